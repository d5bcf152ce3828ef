# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Parse ``nvidia-smi topo -m`` (topology matrix) output."""

import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'nvidia-smi topo -m'

_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
_DEVICE = re.compile(r'^(GPU|NIC)\d+$')


def parse(text, source=SOURCE):
    """Parse the connection matrix between GPUs and NICs.

    :returns: a dict with ``devices`` (the column names, such as GPU0 or
        NIC3), ``links`` (device to device to connection type: X, NV18, PIX,
        PXB, PHB, NODE or SYS) and ``affinity`` (GPU to its ``cpus`` and
        ``numa`` strings).
    :raises: ParseError when the output is empty or has no GPU rows.
    """
    common.check_text(text, source)
    lines = [_ANSI_ESCAPE.sub('', line) for line in text.splitlines()]
    header = None
    links = {}
    affinity = {}
    for line in lines:
        cells = [cell.strip() for cell in line.split('\t')]
        if header is None:
            if any(_DEVICE.match(cell) for cell in cells):
                header = cells
            continue
        name = cells[0]
        if not _DEVICE.match(name):
            if links:
                break
            continue
        devices = [cell for cell in header[1:] if _DEVICE.match(cell)]
        row = cells[1:1 + len(devices)]
        links[name] = dict(zip(devices, row))
        if name.startswith('GPU'):
            extra = cells[1 + len(devices):]
            affinity[name] = {
                'cpus': extra[0] if len(extra) > 0 else None,
                'numa': extra[1] if len(extra) > 1 else None,
            }
    if not any(name.startswith('GPU') for name in links):
        raise common.ParseError(source, 'no GPU rows found')
    devices = [cell for cell in header[1:] if _DEVICE.match(cell)]
    return {'devices': devices, 'links': links, 'affinity': affinity}
