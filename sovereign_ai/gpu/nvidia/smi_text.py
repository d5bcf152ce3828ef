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

"""Parse ``nvidia-smi -q`` text output.

The text form nests sections by indentation, four spaces a level. Each line
is either ``Key : Value`` or a section title. A line may carry a value and
open a section at once (``HW Slowdown : Active`` heads the thermal and
power-brake lines).
"""

import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'nvidia-smi -q'

_GPU_HEADER = re.compile(r'^GPU ([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.\d)')
_WARNING = re.compile(
    r'WARNING: infoROM is corrupted at gpu ([0-9A-Fa-f]+:[0-9A-Fa-f]+:'
    r'[0-9A-Fa-f]+\.\d)')

_REASON_NAMES = {
    'idle': 'gpu_idle',
    'applications clocks setting': 'applications_clocks_setting',
    'sw power cap': 'sw_power_cap',
    'hw slowdown': 'hw_slowdown',
    'hw thermal slowdown': 'hw_thermal_slowdown',
    'hw power brake slowdown': 'hw_power_brake_slowdown',
    'sync boost': 'sync_boost',
    'sw thermal slowdown': 'sw_thermal_slowdown',
    'display clock setting': 'display_clocks_setting',
}


def _flatten(lines):
    """Map each key path (a tuple of titles) of one GPU block to its value.

    Titles are lower-cased because drivers differ in case ("Ecc Mode" in
    460, "ECC Mode" in 535). A repeated path keeps its first value.
    """
    values = {}
    stack = []
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(' '))
        level = max(indent // 4 - 1, 0)
        key, separator, value = line.strip().partition(':')
        key = key.strip().lower()
        del stack[level:]
        stack.append(key)
        path = tuple(stack)
        if separator and path not in values:
            values[path] = value.strip()
    return values


def _find(values, *path):
    return values.get(tuple(title.lower() for title in path))


def _first(values, *paths):
    for path in paths:
        value = _find(values, *path)
        if value is not None:
            return value
    return None


def _volatile_uncorrectable(values):
    double_bit = _find(values, 'ECC Errors', 'Volatile', 'Double Bit',
                       'Total')
    if double_bit is not None:
        return common.to_int(double_bit)
    counts = [common.to_int(value) for path, value in values.items()
              if path[:2] == ('ecc errors', 'volatile')
              and 'uncorrectable' in path[-1]]
    counts = [count for count in counts if count is not None]
    if not counts:
        return None
    return sum(counts)


def _clocks_event_reasons(values):
    reasons = dict.fromkeys(common.CLOCKS_EVENT_REASONS)
    for path, value in values.items():
        if path[0] not in ('clocks event reasons',
                           'clocks throttle reasons'):
            continue
        name = _REASON_NAMES.get(path[-1])
        if name is not None:
            reasons[name] = common.to_bool(value)
    return reasons


def _parse_gpu(index, bus_id, lines, driver_version):
    values = _flatten(lines)
    record = common.new_gpu_record(index)
    record['bus_id'] = common.normalize_bus_id(
        _find(values, 'PCI', 'Bus Id') or bus_id)
    record['product_name'] = _find(values, 'Product Name')
    record['serial'] = _find(values, 'Serial Number')
    record['uuid'] = _find(values, 'GPU UUID')
    record['driver_version'] = driver_version
    record['persistence_mode'] = common.to_bool(
        _find(values, 'Persistence Mode'))
    record['mig_mode'] = common.to_bool(_find(values, 'MIG Mode', 'Current'))
    record['ecc_mode'] = common.to_bool(_find(values, 'ECC Mode', 'Current'))
    record['ecc_mode_pending'] = common.to_bool(
        _find(values, 'ECC Mode', 'Pending'))
    record['ecc_volatile_uncorrectable'] = _volatile_uncorrectable(values)

    record['retired_pages'] = {
        'single_bit': common.to_int(
            _find(values, 'Retired Pages', 'Single Bit ECC')),
        'double_bit': common.to_int(
            _find(values, 'Retired Pages', 'Double Bit ECC')),
        'pending': common.to_bool(_first(
            values, ('Retired Pages', 'Pending Page Retirement'),
            ('Retired Pages', 'Pending Page Blacklist'),
            ('Retired Pages', 'Pending'))),
    }
    record['remapped_rows'] = {
        'correctable': common.to_int(
            _find(values, 'Remapped Rows', 'Correctable Error')),
        'uncorrectable': common.to_int(
            _find(values, 'Remapped Rows', 'Uncorrectable Error')),
        'pending': common.to_bool(_find(values, 'Remapped Rows', 'Pending')),
        'failure': common.to_bool(
            _find(values, 'Remapped Rows', 'Remapping Failure Occurred')),
    }

    link = ('PCI', 'GPU Link Info')
    record['pcie'] = {
        'gen_max': common.to_int(
            _find(values, *link, 'PCIe Generation', 'Max')),
        'gen_current': common.to_int(
            _find(values, *link, 'PCIe Generation', 'Current')),
        'width_max': common.to_int(
            _find(values, *link, 'Link Width', 'Max')),
        'width_current': common.to_int(
            _find(values, *link, 'Link Width', 'Current')),
        'replays': common.to_int(
            _find(values, 'PCI', 'Replays Since Reset')),
    }

    record['clocks_event_reasons'] = _clocks_event_reasons(values)
    record['fabric'] = {
        'state': _find(values, 'Fabric', 'State'),
        'status': _find(values, 'Fabric', 'Status'),
    }
    record['reset_required'] = common.to_bool(
        _find(values, 'GPU Reset Status', 'Reset Required'))
    record['performance_state'] = _find(values, 'Performance State')
    record['temperature'] = common.to_float(
        _find(values, 'Temperature', 'GPU Current Temp'))
    record['power_draw'] = common.to_float(_first(
        values, ('GPU Power Readings', 'Power Draw'),
        ('Power Readings', 'Power Draw')))
    record['inforom_image_version'] = _find(
        values, 'Inforom Version', 'Image Version')
    return record


def parse_inforom_warnings(text):
    """Return the bus ids that nvidia-smi reports a corrupted infoROM for.

    nvidia-smi prints ``WARNING: infoROM is corrupted at gpu <bus id>``
    after its normal output (and exits 14), whatever the query format.
    """
    return [common.normalize_bus_id(match.group(1))
            for match in _WARNING.finditer(text or '')]


def parse(text, source=SOURCE):
    """Parse ``nvidia-smi -q`` output into a list of GPU records.

    :returns: a dict with ``driver_version``, ``cuda_version``,
        ``attached_gpus`` and ``gpus`` as :func:`smi_xml.parse` returns.
    :raises: ParseError when the output is empty, has no NVSMI header or
        lists fewer GPU blocks than ``Attached GPUs`` (truncated output).
    """
    common.check_text(text, source)
    if 'NVSMI LOG' not in text:
        raise common.ParseError(
            source, 'the "NVSMI LOG" header is missing: this is not '
            'nvidia-smi -q output')

    header = {}
    blocks = []
    for line in text.splitlines():
        match = _GPU_HEADER.match(line)
        if match:
            blocks.append((match.group(1), []))
        elif blocks:
            blocks[-1][1].append(line)
        else:
            key, separator, value = line.partition(':')
            if separator:
                header[key.strip()] = value.strip()

    # NOTE: output cut inside the last GPU block is not detected here: its
    # missing fields read as not reported. Use the XML query, whose parser
    # rejects a cut document, where that matters.
    driver_version = header.get('Driver Version')
    attached = common.to_int(header.get('Attached GPUs'))
    gpus = [_parse_gpu(index, bus_id, lines, driver_version)
            for index, (bus_id, lines) in enumerate(blocks)]
    if attached is not None and len(gpus) < attached:
        raise common.ParseError(
            source, 'the output lists %d of %d attached GPUs: it is '
            'truncated' % (len(gpus), attached))
    return {
        'driver_version': driver_version,
        'cuda_version': header.get('CUDA Version'),
        'attached_gpus': attached,
        'gpus': gpus,
    }
