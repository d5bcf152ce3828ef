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

"""Parse ``nvidia-smi --query-gpu=... --format=csv`` output.

The header row names the fields, so rows are read by name whatever order
or subset was requested. Units in the header (``power.draw [W]``) and in the
values (``70.89 W``) are dropped. Driver 535 renamed the
``clocks_throttle_reasons.*`` fields to ``clocks_event_reasons.*``; both
names are returned under the new one.
"""

import csv
import io
import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'nvidia-smi --query-gpu'

_OLD_PREFIX = 'clocks_throttle_reasons.'
_NEW_PREFIX = 'clocks_event_reasons.'

# Fields that stay text even when they look like numbers: serial numbers
# have leading zeros and versions have several dots.
_STRING_FIELD_WORDS = ('serial', 'uuid', 'bus_id', 'version', 'name',
                       'part_number', 'timestamp')
_HEX = re.compile(r'^0x[0-9a-fA-F]+$')
# A whole number or a decimal, with an optional unit: 70.89 W, 48, 16 %.
_NUMBER_WITH_UNIT = re.compile(r'^(-?\d+(\.\d+)?)(?: ?[A-Za-z%]+)?$')


def _field_name(header):
    name = header.strip().split(' [', 1)[0].strip()
    if name.startswith(_OLD_PREFIX):
        name = _NEW_PREFIX + name[len(_OLD_PREFIX):]
    return name


def _value(name, text):
    if common.is_missing(text):
        return None
    text = text.strip()
    if any(word in name for word in _STRING_FIELD_WORDS):
        return text
    flag = common.to_bool(text)
    if flag is not None:
        return flag
    if _HEX.match(text):
        return int(text, 16)
    match = _NUMBER_WITH_UNIT.match(text)
    if match is None:
        return text
    if match.group(2) is None:
        return int(match.group(1))
    return float(match.group(1))


def parse(text, source=SOURCE):
    """Parse CSV with a header row into one dict per GPU row.

    :raises: ParseError when the output is empty, has no data rows, or has a
        row with a different number of cells than the header (truncated
        output).
    """
    common.check_text(text, source)
    reader = csv.reader(io.StringIO(text.strip()), skipinitialspace=True)
    rows = [row for row in reader if row]
    header = [_field_name(cell) for cell in rows[0]]
    if len(rows) < 2:
        raise common.ParseError(source, 'the output has a header but no rows')

    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise common.ParseError(
                source, 'line %d has %d values, the header has %d: the '
                'output is truncated or malformed'
                % (number, len(row), len(header)))
        records.append({name: _value(name, cell)
                        for name, cell in zip(header, row)})
    return records
