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

"""Parse ``nvidia-smi nvlink -s`` (link status) output."""

import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'nvidia-smi nvlink -s'

_GPU = re.compile(r'^GPU (\d+): (.*?)(?: \(UUID: ([^)]*)\))?\s*$')
_LINK = re.compile(r'^Link (\d+): (.*)$')
_ALL_INACTIVE = 'all links are inactive'


def parse(text, source=SOURCE):
    """Parse the link status of each GPU.

    :returns: a dict with ``gpus``, a list of dicts with ``index``, ``name``,
        ``uuid``, ``links`` (link number to speed in GB/s, None when the
        link is ``<inactive>``) and ``all_inactive`` (NVML reported that
        every link is down); and ``all_inactive`` for that message printed
        without a GPU header.
    :raises: ParseError when the output is empty or a line is neither a GPU
        header nor a link line.
    """
    common.check_text(text, source)
    gpus = []
    orphan_all_inactive = False
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        gpu = _GPU.match(line)
        link = _LINK.match(line)
        if gpu:
            gpus.append({'index': int(gpu.group(1)), 'name': gpu.group(2),
                         'uuid': gpu.group(3), 'links': {},
                         'all_inactive': False})
        elif link and gpus:
            state = link.group(2).strip()
            speed = None if state == '<inactive>' else common.to_float(state)
            gpus[-1]['links'][int(link.group(1))] = speed
        elif _ALL_INACTIVE in line:
            if gpus:
                gpus[-1]['all_inactive'] = True
            else:
                orphan_all_inactive = True
        else:
            raise common.ParseError(
                source, 'unexpected line %r' % line[:80])
    return {'gpus': gpus, 'all_inactive': orphan_all_inactive}
