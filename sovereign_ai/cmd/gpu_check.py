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

"""``sovereign-ai gpu-check``: validate the NVIDIA GPUs of this host.

It runs the checks of the validate_gpus step, and with ``--burnin`` the
burnin_gpus step, outside Ironic.

Exit statuses:

* 0: every check passed (warnings may have been printed).
* 1: a check found a fault, a tool was missing, failed or timed out, or an
  NVIDIA GPU is on the PCI bus but nvidia-smi is not installed.
* 2: invalid input (an option, a ``--set`` value or a ``--sysfs-root``
  that is not a sysfs tree).
* 3: nothing to check: no NVIDIA GPU is on the PCI bus, and nvidia-smi is
  not installed or lists no GPU.

With ``--format json`` every outcome, including invalid input detected
after the options are parsed, prints one JSON object on stdout.
"""

import argparse
import json
import os
import shutil
import sys

from oslo_config import cfg

from sovereign_ai.cmd import main
from sovereign_ai import conf  # noqa: F401  (registers the options)
from sovereign_ai.conf import ironic as ironic_conf
from sovereign_ai.ironic import args
from sovereign_ai.ironic import report
from sovereign_ai.ironic import steps
from sovereign_ai.ironic import sysfs

CONF = cfg.CONF

EXIT_HEALTHY = 0
EXIT_FAULTS = 1
EXIT_NO_GPU = 3

DEFAULT_SYSFS_ROOT = '/sys'

EXIT_STATUS_HELP = """exit statuses:
  0  every check passed (warnings may have been printed)
  1  a check found a fault, a tool was missing, failed or timed out, or
     an NVIDIA GPU is on the PCI bus but nvidia-smi is not installed
  2  invalid input
  3  nothing to check: no NVIDIA GPU is on the PCI bus"""


def _parse_settings(pairs):
    """Split NAME=VALUE pairs into validate and burn-in arguments."""
    validate, burnin = {}, {}
    for pair in pairs or []:
        name, separator, value = pair.partition('=')
        name = name.strip()
        if not separator or not name:
            raise main.CommandError(
                '--set %r is not NAME=VALUE, for example --set '
                'max_retired_pages=4' % pair)
        if name not in args.VALIDATE_ARGS and name not in args.BURNIN_ARGS:
            valid = sorted(set(args.VALIDATE_ARGS).union(args.BURNIN_ARGS))
            raise main.CommandError(
                '--set %s: unknown argument; valid arguments: %s'
                % (name, ', '.join(valid)))
        if name in args.VALIDATE_ARGS:
            validate[name] = value
        if name in args.BURNIN_ARGS:
            burnin[name] = value
    return validate, burnin


def _load_config(path):
    if not os.path.isfile(path):
        raise main.CommandError('--config-file %s: file not found' % path)
    try:
        CONF([], project='sovereign-ai', default_config_files=[path])
        # Read every option once so an invalid value fails here.
        for option in ironic_conf.OPTS:
            getattr(CONF.sovereign_ai_ironic, option.dest)
    except cfg.Error as error:
        raise main.CommandError('--config-file %s: %s' % (path, error))


def _resolve(specs, requested):
    try:
        return args.resolve(specs, requested)
    except args.InvalidArgument as error:
        raise main.CommandError(str(error))


def _convert_option(option, name, value):
    """Check a command-line option against the step argument it sets.

    The error names the option (``--expected-gpu-count``), not the step
    argument, because the operator typed the option.
    """
    try:
        return args.VALIDATE_ARGS[name].convert(option, value)
    except args.InvalidArgument as error:
        raise main.CommandError(str(error))


def _sysfs_root(path):
    """Return the sysfs root to search for GPUs.

    An explicit ``--sysfs-root`` must contain bus/pci/devices, so a
    mistyped path fails instead of reading as a host without GPUs. The
    default /sys may lack it on a host without a PCI bus.
    """
    if path is None:
        return DEFAULT_SYSFS_ROOT
    if not os.path.isdir(path):
        raise main.CommandError(
            '--sysfs-root %s: directory not found; give the directory where '
            'sysfs is mounted (default: /sys)' % path)
    if not os.path.isdir(os.path.join(path, 'bus', 'pci', 'devices')):
        raise main.CommandError(
            '--sysfs-root %s: bus/pci/devices not found, so this is not a '
            'sysfs tree; give the directory where sysfs is mounted '
            '(default: /sys)' % path)
    return path


def _gpus_on_bus(count):
    if count == 1:
        return '1 NVIDIA GPU is on the PCI bus'
    return '%d NVIDIA GPUs are on the PCI bus' % count


def _missing_smi_message(command, gpu_count):
    if os.path.dirname(command):
        problem = '%s is not an executable file' % command
    else:
        problem = '%s was not found on PATH' % command
    return ('%s but %s: install the NVIDIA driver or set '
            '[sovereign_ai_ironic] nvidia_smi_command'
            % (_gpus_on_bus(gpu_count), problem))


def _not_run(step, settings, message):
    """Return the result of a step that could not start."""
    result = steps.StepResult(step, settings)
    result.error = message
    return result


def _summary(results):
    """Return the last line of the text output, after "gpu-check: "."""
    faults = sum(len(result.faults) for result in results)
    incomplete = [result.step for result in results if result.error]
    if not faults and not incomplete:
        return 'healthy'
    parts = []
    if faults:
        parts.append('%d fault(s) found' % faults)
    if incomplete:
        parts.append('%s did not complete' % ' and '.join(incomplete))
    return '; '.join(parts)


def _print_json(status, exit_status, message, results=(), paths=None):
    print(json.dumps({
        'status': status,
        'exit_status': exit_status,
        'message': message,
        'reports': [result.report for result in results],
        'report_paths': paths or {},
    }, indent=2, sort_keys=True, default=str))


def _label(entry):
    if entry['gpu'] is None:
        return 'node'
    parts = [entry['bus_id']] if entry['bus_id'] else []
    if entry['serial']:
        parts.append('serial %s' % entry['serial'])
    return 'GPU %s (%s)' % (entry['gpu'], ', '.join(parts))


def _print_text(results, paths):
    for result in results:
        if result.error:
            # A step that stopped early has no findings to count.
            print('%s: ERROR: %s' % (result.step, result.error))
        else:
            print('%s: %s on %d GPU(s), %d fault(s), %d warning(s)' % (
                result.step, 'FAILED' if result.faults else 'PASSED',
                result.gpu_count, len(result.faults),
                len(result.findings) - len(result.faults)))
        # Faults first, then warnings, each in GPU order.
        ordered = sorted(result.findings, key=lambda entry: (
            entry['severity'] != 'fault', entry['gpu'] is not None,
            entry['gpu'] or 0))
        for entry in ordered:
            print('  %s: %s: %s' % (entry['severity'].upper(), _label(entry),
                                    entry['message']))
        throughput = result.data.get('throughput_gflops')
        if throughput:
            print('  throughput (Gflop/s): %s' % ', '.join(
                'GPU %s %.0f' % (index, value)
                for index, value in sorted(throughput.items(),
                                           key=lambda item: int(item[0]))))
        if paths.get(result.step):
            print('  report: %s' % paths[result.step])


def _step_settings(options):
    """Return the resolved validate_gpus and burnin_gpus settings.

    The burnin_gpus settings are None without ``--burnin``.
    """
    validate_arguments, burnin_arguments = _parse_settings(options.settings)
    expected_count = None
    if options.expected_gpu_count is not None:
        expected_count = _convert_option(
            '--expected-gpu-count', 'expected_gpu_count',
            options.expected_gpu_count)
    for requested in (validate_arguments, burnin_arguments):
        if expected_count is not None:
            requested['expected_gpu_count'] = expected_count
        if options.expected_gpu_model:
            requested['expected_gpu_model'] = options.expected_gpu_model
    validate_settings = _resolve(args.VALIDATE_ARGS, validate_arguments)

    if options.burnin is None:
        return validate_settings, None
    maximum = args.BURNIN_ARGS['duration'].maximum
    if not 1 <= options.burnin <= maximum:
        raise main.CommandError(
            '--burnin %d is out of range: give 1 to %d seconds'
            % (options.burnin, maximum))
    burnin_arguments['duration'] = options.burnin
    burnin_arguments['backend'] = options.backend
    return validate_settings, _resolve(args.BURNIN_ARGS, burnin_arguments)


class GpuCheckCommand(main.Command):
    """Validate (and optionally burn in) the NVIDIA GPUs of this host."""

    help = ('Check the NVIDIA driver and GPU health of this host, and '
            'optionally burn the GPUs in, as the Ironic steps do.')

    def add_arguments(self, parser):
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = EXIT_STATUS_HELP
        parser.add_argument(
            '--burnin', type=int, metavar='SECONDS',
            help='Also run the burn-in for this many seconds (gpu-burn; '
                 'DCGM runs for as long as its level takes).')
        parser.add_argument(
            '--backend', choices=args.BACKENDS, default='auto',
            help='Burn-in tool (default: auto, DCGM when dcgmi is '
                 'installed, else gpu-burn).')
        parser.add_argument(
            '--format', choices=('text', 'json'), default='text',
            help='Output format (default: text).')
        parser.add_argument(
            '--expected-gpu-count', type=int, metavar='N',
            help='Number of GPUs this host must have.')
        parser.add_argument(
            '--expected-gpu-model', metavar='TEXT',
            help='Text that every GPU product name must contain.')
        parser.add_argument(
            '--set', action='append', dest='settings', metavar='NAME=VALUE',
            help='Set any validate_gpus or burnin_gpus argument, for example '
                 '--set persistence_mode=require. Repeat for several.')
        parser.add_argument(
            '--report-dir', metavar='DIR',
            help='Write the JSON reports and raw tool output to DIR.')
        parser.add_argument(
            '--config-file', metavar='FILE',
            help='Read the [sovereign_ai_ironic] options (tool paths, '
                 'timeouts, query format) from FILE.')
        parser.add_argument(
            '--sysfs-root', metavar='DIR',
            help='Directory where sysfs is mounted, searched for NVIDIA '
                 'GPUs under bus/pci/devices (default: %s).'
                 % DEFAULT_SYSFS_ROOT)

    def run(self, options):
        # NOTE: argparse rejects a malformed value (--burnin abc) before
        # run() starts, so that error stays plain text with --format json.
        try:
            return self._run(options)
        except main.CommandError as error:
            if options.format == 'json':
                _print_json('invalid-input', error.exit_status, str(error))
            raise

    def _run(self, options):
        if options.config_file:
            _load_config(options.config_file)
        validate_settings, burnin_settings = _step_settings(options)
        sysfs_root = _sysfs_root(options.sysfs_root)

        on_bus = sysfs.list_gpus(sysfs_root)
        command = CONF.sovereign_ai_ironic.nvidia_smi_command
        installed = shutil.which(command) is not None
        if not installed and not on_bus:
            return self._nothing_to_check(
                options, 'no NVIDIA GPU is on the PCI bus, and %s is not '
                'installed' % command)
        if not installed:
            # A GPU without its driver cannot be used, so this is a fault,
            # not a host to skip.
            results = [_not_run(steps.VALIDATE, validate_settings,
                                _missing_smi_message(command, len(on_bus)))]
        else:
            results = [steps.validate(validate_settings, sysfs_root)]
        first = results[0]
        if not on_bus and (first.error or not first.gpu_count):
            reason = ('no NVIDIA GPU is on the PCI bus, and nvidia-smi '
                      'lists none')
            if first.error:
                reason += ' (%s)' % first.error
            return self._nothing_to_check(options, reason)
        if burnin_settings is not None and not first.error:
            results.append(steps.burn_in(burnin_settings))

        paths = {}
        if options.report_dir:
            for result in results:
                paths[result.step] = report.write(
                    options.report_dir, result.step, result.report,
                    result.raw)

        failed = any(result.failed for result in results)
        status = EXIT_FAULTS if failed else EXIT_HEALTHY
        if options.format == 'json':
            _print_json('faults' if failed else 'healthy', status,
                        _summary(results), results, paths)
        else:
            _print_text(results, paths)
            print('gpu-check: %s' % _summary(results))
        return status

    def _nothing_to_check(self, options, reason):
        if options.format == 'json':
            _print_json('no-gpu', EXIT_NO_GPU, 'nothing to check: %s' % reason)
        else:
            print('sovereign-ai gpu-check: nothing to check: %s.' % reason,
                  file=sys.stderr)
        return EXIT_NO_GPU
