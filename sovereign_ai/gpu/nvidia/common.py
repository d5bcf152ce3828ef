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

"""Value conversions shared by the NVIDIA tool parsers."""

import re

# Values that NVIDIA tools print when a field does not apply or cannot be
# read. They all become None.
_MISSING_VALUES = frozenset([
    '', 'n/a', '[n/a]', 'not supported', '[not supported]', 'unknown error',
    '[unknown error]', 'insufficient permissions',
    '[insufficient permissions]', 'not available', 'none',
])

_TRUE_VALUES = frozenset(['active', 'enabled', 'yes', 'on', 'true'])
_FALSE_VALUES = frozenset(['not active', 'disabled', 'no', 'off', 'false'])

_NUMBER = re.compile(r'^[-+]?\d+(\.\d+)?')


class ParseError(ValueError):
    """Output of a tool that cannot be parsed.

    :param source: the tool command or file name the output came from.
    :param reason: what is wrong with the output.
    """

    def __init__(self, source, reason):
        super().__init__('%s: %s' % (source, reason))
        self.source = source
        self.reason = reason


def is_missing(value):
    """Return True when ``value`` is absent or one of the N/A spellings."""
    return value is None or value.strip().lower() in _MISSING_VALUES


def to_bool(value):
    """Convert Active/Enabled/Yes (True) and their negations (False).

    Returns None for N/A and for any other word.
    """
    if is_missing(value):
        return None
    word = value.strip().lower()
    if word in _TRUE_VALUES:
        return True
    if word in _FALSE_VALUES:
        return False
    return None


def to_float(value):
    """Convert the leading number of ``value`` ("70.89 W", "16x")."""
    if is_missing(value):
        return None
    match = _NUMBER.match(value.strip())
    if match is None:
        return None
    return float(match.group(0))


def to_int(value):
    """Convert the leading integer of ``value`` ("43", "16x", "29 C")."""
    number = to_float(value)
    if number is None:
        return None
    return int(number)


def check_text(text, source):
    """Raise ParseError when ``text`` is empty; return it stripped."""
    if text is None or not text.strip():
        raise ParseError(source, 'the output is empty')
    return text


CLOCKS_EVENT_REASONS = (
    'gpu_idle', 'applications_clocks_setting', 'sw_power_cap',
    'hw_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown',
    'sync_boost', 'sw_thermal_slowdown', 'display_clocks_setting',
)


def new_gpu_record(index):
    """Return an empty GPU record: the shape every query parser returns.

    Counters and states stay None when the tool reports N/A, so checks can
    tell "zero" from "not reported".
    """
    return {
        'index': index,
        'bus_id': None,
        'product_name': None,
        'serial': None,
        'uuid': None,
        'driver_version': None,
        'persistence_mode': None,
        'mig_mode': None,
        'ecc_mode': None,
        'ecc_mode_pending': None,
        'ecc_volatile_uncorrectable': None,
        'retired_pages': {
            'single_bit': None, 'double_bit': None, 'pending': None},
        'remapped_rows': {
            'correctable': None, 'uncorrectable': None, 'pending': None,
            'failure': None},
        'pcie': {
            'gen_max': None, 'gen_current': None, 'width_max': None,
            'width_current': None, 'replays': None},
        'clocks_event_reasons': dict.fromkeys(CLOCKS_EVENT_REASONS),
        'fabric': {'state': None, 'status': None},
        'reset_required': None,
        'performance_state': None,
        'temperature': None,
        'power_draw': None,
        'inforom_image_version': None,
    }


def normalize_bus_id(bus_id):
    """Return a PCI bus id in nvidia-smi's 8-digit-domain upper-case form.

    nvidia-smi writes 00000000:19:00.0, the kernel and sysfs 0000:19:00.0.
    """
    if not bus_id:
        return bus_id
    parts = bus_id.strip().split(':')
    if len(parts) != 3:
        return bus_id.strip().upper()
    domain = parts[0].rjust(8, '0')[-8:]
    return ('%s:%s:%s' % (domain, parts[1], parts[2])).upper()
