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

"""Parse Xid events from the kernel log (``dmesg`` output).

The NVIDIA driver logs ``NVRM: Xid (PCI:0000:9b:00): 119, pid=..., ...``
for each GPU error event it detects.
"""

import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'dmesg'

_XID = re.compile(
    r'NVRM: Xid \(PCI:(?P<bus>[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+)'
    r'(?:\.\d)?\): (?P<xid>\d+),\s*(?P<message>.*)$')


def parse(text, source=SOURCE):
    """Return the Xid events of a kernel log, oldest first.

    An empty log is valid (a freshly booted node may have no output worth
    reporting), so this parser never raises on empty input.

    :returns: a list of dicts with ``bus_id`` (nvidia-smi form, function 0),
        ``xid`` (int) and ``message`` (the rest of the line).
    """
    events = []
    for line in (text or '').splitlines():
        match = _XID.search(line)
        if match is None:
            continue
        events.append({
            'bus_id': common.normalize_bus_id(match.group('bus') + '.0'),
            'xid': int(match.group('xid')),
            'message': match.group('message').strip(),
        })
    return events
