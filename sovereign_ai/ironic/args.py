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

"""Arguments of the GPU steps: their declaration and validation.

Ironic checks only the argument names against ``argsinfo``. The types and
ranges are checked here, before any tool runs, so a wrong value fails the
step at once with a message that names the argument.
"""

import re

from sovereign_ai.gpu.nvidia import common

CLOCKS_EVENT_REASONS = common.CLOCKS_EVENT_REASONS

# Xid codes that mean a GPU needs a reset, a drain or a replacement. The
# meanings, from NVIDIA's Xid catalogue: 48 double-bit ECC error, 63 row
# remapping or page retirement event, 64 row remapping or page retirement
# failure, 74 NVLink error, 79 GPU has fallen off the bus, 92 high
# single-bit ECC error rate, 94 contained ECC error, 95 uncontained ECC
# error, 119 GSP RPC timeout.
DEFAULT_CRITICAL_XIDS = [48, 63, 64, 74, 79, 92, 94, 95, 119]

DEFAULT_IDLE_SLOWDOWN_REASONS = ['hw_thermal_slowdown', 'sw_thermal_slowdown']
DEFAULT_LOAD_SLOWDOWN_REASONS = [
    'hw_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown',
    'sw_thermal_slowdown']

BACKENDS = ('auto', 'dcgm', 'gpu-burn')

# Estimated upper bounds of a `dcgmi diag` run per level, in seconds, used
# when the operator gives no timeout. Level 3 and 4 run times grow with the
# number of GPUs; raise `timeout` on large nodes.
DCGM_LEVEL_TIMEOUTS = {1: 300, 2: 1200, 3: 3600, 4: 14400}

_DRIVER_VERSION = re.compile(r'^\d+(\.\d+){0,3}$')
_MEMORY = re.compile(r'^(\d{1,3}%|\d{1,7})$')


class InvalidArgument(ValueError):
    """A step argument with a wrong type or out of range."""


class Arg:
    """One step argument: its type, range, default and description."""

    def __init__(self, kind, description, default=None, minimum=None,
                 maximum=None, choices=None, pattern=None, item_choices=None):
        self.kind = kind
        self.description = description
        self.default = default
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.pattern = pattern
        self.item_choices = item_choices

    def convert(self, name, value):
        converter = getattr(self, '_convert_%s' % self.kind)
        return converter(name, value)

    def _range(self, name, value):
        if self.minimum is not None and value < self.minimum:
            raise InvalidArgument(
                'argument %s=%r is below the minimum %s'
                % (name, value, self.minimum))
        if self.maximum is not None and value > self.maximum:
            raise InvalidArgument(
                'argument %s=%r is above the maximum %s'
                % (name, value, self.maximum))
        return value

    def _convert_integer(self, name, value):
        if isinstance(value, str) and re.match(r'^-?\d+$', value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(
                'argument %s=%r is not an integer' % (name, value))
        return self._range(name, value)

    def _convert_number(self, name, value):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgument(
                'argument %s=%r is not a number' % (name, value))
        return self._range(name, float(value))

    def _convert_boolean(self, name, value):
        if isinstance(value, str) and value.strip().lower() in (
                'true', 'false'):
            value = value.strip().lower() == 'true'
        if not isinstance(value, bool):
            raise InvalidArgument(
                'argument %s=%r is not a boolean (true or false)'
                % (name, value))
        return value

    def _convert_string(self, name, value):
        if not isinstance(value, str):
            raise InvalidArgument(
                'argument %s=%r is not a string' % (name, value))
        value = value.strip()
        if self.choices and value not in self.choices:
            raise InvalidArgument(
                'argument %s=%r is not one of: %s'
                % (name, value, ', '.join(self.choices)))
        if self.pattern and not self.pattern.match(value):
            raise InvalidArgument(
                'argument %s=%r has an invalid format' % (name, value))
        return value

    def _items(self, name, value):
        if isinstance(value, str):
            value = [item for item in value.split(',') if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise InvalidArgument(
                'argument %s=%r is not a list' % (name, value))
        return list(value)

    def _convert_string_list(self, name, value):
        items = []
        for item in self._items(name, value):
            if not isinstance(item, str):
                raise InvalidArgument(
                    'argument %s has a non-string item %r' % (name, item))
            item = item.strip()
            if self.item_choices and item not in self.item_choices:
                raise InvalidArgument(
                    'argument %s has an invalid item %r; valid items: %s'
                    % (name, item, ', '.join(self.item_choices)))
            if self.pattern and not self.pattern.match(item):
                raise InvalidArgument(
                    'argument %s has an item with an invalid format: %r'
                    % (name, item))
            items.append(item)
        return items

    def _convert_integer_list(self, name, value):
        items = []
        for item in self._items(name, value):
            if isinstance(item, str) and re.match(r'^\d+$', item.strip()):
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidArgument(
                    'argument %s has a non-integer item %r' % (name, item))
            items.append(self._range(name, item))
        return items


_EXPECTED = {
    'expected_gpu_count': Arg(
        'integer', 'Number of GPUs the node must have. 0 skips the check. '
        'Default: the node property sovereign_ai_gpu_count, else no check.',
        minimum=0, maximum=1024),
    'expected_gpu_model': Arg(
        'string', 'Text that every GPU product name must contain, case '
        'insensitive (for example "H100 80GB HBM3"). Default: the node '
        'property sovereign_ai_gpu_model, else no check.'),
}

VALIDATE_ARGS = dict(_EXPECTED, **{
    'allowed_driver_versions': Arg(
        'string_list', 'Driver versions allowed, exactly as nvidia-smi '
        'prints them (list or comma-separated). Default: any.',
        default=[], pattern=_DRIVER_VERSION),
    'min_driver_version': Arg(
        'string', 'Lowest allowed driver version, compared numerically '
        '(for example 535.161). Default: no minimum.',
        pattern=_DRIVER_VERSION),
    'persistence_mode': Arg(
        'string', 'What a GPU with persistence mode disabled does: '
        '"require" fails the step, "warn" reports it, "ignore" skips the '
        'check. Default: warn.', default='warn',
        choices=('require', 'warn', 'ignore')),
    'require_ecc': Arg(
        'boolean', 'Fail when ECC is disabled on a GPU that supports it. '
        'Default: true.', default=True),
    'max_uncorrectable_remapped_rows': Arg(
        'integer', 'Most rows a GPU may have remapped after uncorrectable '
        'errors. Default: 0.', default=0, minimum=0, maximum=1000000),
    'max_retired_pages': Arg(
        'integer', 'Most retired pages (single plus double bit) a GPU may '
        'have. Default: 0.',
        default=0, minimum=0, maximum=1000000),
    'max_volatile_uncorrectable_ecc': Arg(
        'integer', 'Most uncorrectable ECC errors a GPU may have counted '
        'since the driver loaded. Default: 0.', default=0, minimum=0,
        maximum=1000000),
    'fail_on_pending_repair': Arg(
        'boolean', 'Fail a GPU with a pending row remap or page retirement, '
        'which takes effect at the next GPU reset. A remapping failure '
        'always fails. Default: true.', default=True),
    'check_fabric': Arg(
        'boolean', 'On nodes with NVSwitches, fail when the fabric is not '
        'ready: a GPU fabric state other than Completed/Success, or no '
        'running nvidia-fabricmanager when the GPUs do not report a state. '
        'Default: true.', default=True),
    'check_inforom': Arg(
        'boolean', 'Fail a GPU that nvidia-smi reports a corrupted infoROM '
        'for. Default: true.', default=True),
    'max_inactive_nvlinks': Arg(
        'integer', 'Most NVLink links per GPU that may be inactive. '
        'Default: 0.', default=0, minimum=0, maximum=64),
    'pcie_replay_warning': Arg(
        'integer', 'PCIe replay count since reset above which a GPU is '
        'reported as a warning (healthy GPUs count some replays, so this '
        'never fails the step). Default: 1000.', default=1000, minimum=0,
        maximum=10 ** 9),
    'check_pcie_link': Arg(
        'boolean', 'Fail when a GPU that is not idle runs its PCIe link '
        'below the maximum generation or width. Idle GPUs lower the link '
        'to save power, so a lower link is accepted while the idle clocks '
        'event reason is active, and burnin_gpus checks the link under '
        'load. Default: true.', default=True),
    'critical_xids': Arg(
        'integer_list', 'Xid codes in the kernel log since boot that fail '
        'the GPU they name. Default: %s.'
        % ', '.join(str(xid) for xid in DEFAULT_CRITICAL_XIDS),
        default=DEFAULT_CRITICAL_XIDS, minimum=1, maximum=100000),
    'fail_slowdown_reasons': Arg(
        'string_list', 'Clocks event reasons that fail a GPU when active '
        'during validation, with no load applied; other active slowdown '
        'reasons are reported as warnings. Valid items: '
        '%s. Default: %s.' % (', '.join(CLOCKS_EVENT_REASONS),
                              ', '.join(DEFAULT_IDLE_SLOWDOWN_REASONS)),
        default=DEFAULT_IDLE_SLOWDOWN_REASONS,
        item_choices=CLOCKS_EVENT_REASONS),
})

BURNIN_ARGS = dict(_EXPECTED, **{
    'backend': Arg(
        'string', 'Stress tool: "dcgm" (dcgmi diag), "gpu-burn", or "auto" '
        '(dcgm when dcgmi is installed, else gpu-burn). Default: auto.',
        default='auto', choices=BACKENDS),
    'duration': Arg(
        'integer', 'Seconds gpu-burn runs. DCGM runs for as long as its '
        'level takes. Default: 600.', default=600, minimum=1,
        maximum=7 * 24 * 3600),
    'dcgm_level': Arg(
        'integer', 'dcgmi diag run level, 1 (seconds) to 4 (hours). '
        'Default: 3.', default=3, minimum=1, maximum=4),
    'timeout': Arg(
        'integer', 'Seconds after which the stress tool is killed and the '
        'step fails. Default: duration + 600 for gpu-burn; 300, 1200, 3600 '
        'or 14400 for DCGM levels 1 to 4.', minimum=1,
        maximum=14 * 24 * 3600),
    'gpu_burn_memory': Arg(
        'string', 'GPU memory gpu-burn uses: a percentage ("95%") or MB '
        '("70000"). Default: 95%.', default='95%', pattern=_MEMORY),
    'gpu_burn_doubles': Arg(
        'boolean', 'Run gpu-burn in double precision (-d). Default: false.',
        default=False),
    'gpu_burn_tensor_cores': Arg(
        'boolean', 'Let gpu-burn use tensor cores (-tc). Default: false.',
        default=False),
    'sample_interval': Arg(
        'number', 'Seconds between two nvidia-smi samples of temperature, '
        'power, clocks event reasons, ECC counters and PCIe link while the '
        'stress tool runs. Default: 5.', default=5.0, minimum=0.05,
        maximum=3600),
    'fail_slowdown_reasons': Arg(
        'string_list', 'Clocks event reasons that fail a GPU when seen in '
        'any sample under load. Valid items: %s. Default: %s.'
        % (', '.join(CLOCKS_EVENT_REASONS),
           ', '.join(DEFAULT_LOAD_SLOWDOWN_REASONS)),
        default=DEFAULT_LOAD_SLOWDOWN_REASONS,
        item_choices=CLOCKS_EVENT_REASONS),
    'max_temperature': Arg(
        'integer', 'Highest GPU temperature in degrees Celsius allowed in '
        'any sample. 0 turns the check off, leaving thermal slowdown '
        'reasons to catch overheating. Default: 0.', default=0,
        minimum=0, maximum=150),
    'max_throughput_deficit_percent': Arg(
        'number', 'How far, in percent, a GPU may fall below the median '
        'gpu-burn throughput of the node before it fails. Default: 10.',
        default=10.0, minimum=0, maximum=100),
    'max_new_uncorrectable_ecc': Arg(
        'integer', 'Most uncorrectable ECC errors a GPU may add during the '
        'run. Default: 0.', default=0, minimum=0, maximum=1000000),
    'check_pcie_link': Arg(
        'boolean', 'Fail when a GPU never reaches its maximum PCIe '
        'generation and width in any sample under load. Default: true.',
        default=True),
    'critical_xids': Arg(
        'integer_list', 'Xid codes that fail a GPU when they appear in the '
        'kernel log during the run. Default: %s.'
        % ', '.join(str(xid) for xid in DEFAULT_CRITICAL_XIDS),
        default=DEFAULT_CRITICAL_XIDS, minimum=1, maximum=100000),
})


def argsinfo(specs):
    """Return the IPA ``argsinfo`` declaration of a step's arguments."""
    return {name: {'description': spec.description, 'required': False}
            for name, spec in sorted(specs.items())}


def resolve(specs, requested, node=None):
    """Validate the given arguments and fill in the defaults.

    :param specs: VALIDATE_ARGS or BURNIN_ARGS.
    :param requested: the arguments of the step call.
    :param node: the Ironic node dict, whose properties give the expected
        GPU count and model when the arguments do not.
    :returns: a dict with a value (possibly None) for every argument.
    :raises: InvalidArgument naming the first invalid argument.
    """
    unknown = sorted(set(requested) - set(specs))
    if unknown:
        raise InvalidArgument(
            'unknown argument(s): %s; valid arguments: %s'
            % (', '.join(unknown), ', '.join(sorted(specs))))

    properties = (node or {}).get('properties') or {}
    values = {}
    for name, spec in specs.items():
        value = requested.get(name)
        source = name
        if value is None and name == 'expected_gpu_count':
            value = properties.get('sovereign_ai_gpu_count')
            source = 'node property sovereign_ai_gpu_count'
        elif value is None and name == 'expected_gpu_model':
            value = properties.get('sovereign_ai_gpu_model')
            source = 'node property sovereign_ai_gpu_model'
        if value is None:
            default = spec.default
            values[name] = list(default) if isinstance(
                default, list) else default
            continue
        values[name] = spec.convert(source, value)
    return values
