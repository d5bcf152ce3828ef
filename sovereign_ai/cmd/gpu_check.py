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
* 1: at least one fault was found, or a tool failed or timed out.
* 2: invalid input (an option or a ``--set`` value).
* 3: nothing to check: no NVIDIA GPU, or nvidia-smi is not installed.
"""

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


def _label(entry):
    if entry['gpu'] is None:
        return 'node'
    parts = [entry['bus_id']] if entry['bus_id'] else []
    if entry['serial']:
        parts.append('serial %s' % entry['serial'])
    return 'GPU %s (%s)' % (entry['gpu'], ', '.join(parts))


def _print_text(results, paths):
    for result in results:
        status = 'FAILED' if result.failed else 'PASSED'
        print('%s: %s on %s GPU(s), %d fault(s), %d warning(s)' % (
            result.step, status, result.gpu_count
            if result.gpu_count is not None else 'unknown',
            len(result.faults),
            len(result.findings) - len(result.faults)))
        if result.error:
            print('  ERROR: %s' % result.error)
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


class GpuCheckCommand(main.Command):
    """Validate (and optionally burn in) the NVIDIA GPUs of this host."""

    help = ('Check the NVIDIA driver and GPU health of this host, and '
            'optionally burn the GPUs in, as the Ironic steps do.')

    def add_arguments(self, parser):
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
            '--sysfs-root', default='/sys', metavar='DIR',
            help='Root of the sysfs tree searched for NVIDIA GPUs '
                 '(default: /sys).')

    def run(self, options):
        if options.config_file:
            _load_config(options.config_file)
        validate_arguments, burnin_arguments = _parse_settings(
            options.settings)
        for requested in (validate_arguments, burnin_arguments):
            if options.expected_gpu_count is not None:
                requested['expected_gpu_count'] = options.expected_gpu_count
            if options.expected_gpu_model:
                requested['expected_gpu_model'] = options.expected_gpu_model
        validate_settings = _resolve(args.VALIDATE_ARGS, validate_arguments)
        burnin_settings = None
        maximum = args.BURNIN_ARGS['duration'].maximum
        if options.burnin is not None and not 1 <= options.burnin <= maximum:
            raise main.CommandError(
                '--burnin %d is out of range: give 1 to %d seconds'
                % (options.burnin, maximum))
        if options.burnin is not None:
            burnin_arguments['duration'] = options.burnin
            burnin_arguments['backend'] = options.backend
            burnin_settings = _resolve(args.BURNIN_ARGS, burnin_arguments)

        on_bus = sysfs.list_gpus(options.sysfs_root)
        command = CONF.sovereign_ai_ironic.nvidia_smi_command
        if shutil.which(command) is None:
            where = ('%d NVIDIA GPU(s) are on the PCI bus' % len(on_bus)
                     if on_bus else 'no NVIDIA GPU is on the PCI bus')
            print('sovereign-ai gpu-check: nothing to check: %s not found '
                  '(%s).' % (command, where), file=sys.stderr)
            return EXIT_NO_GPU

        results = [steps.validate(validate_settings, options.sysfs_root)]
        first = results[0]
        if not on_bus and (first.error or not first.gpu_count):
            print('sovereign-ai gpu-check: nothing to check: no NVIDIA GPU '
                  'found (%s).' % (first.error or 'nvidia-smi lists none'),
                  file=sys.stderr)
            return EXIT_NO_GPU
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
            print(json.dumps({
                'status': 'faults' if failed else 'healthy',
                'exit_status': status,
                'reports': [result.report for result in results],
                'report_paths': paths,
            }, indent=2, sort_keys=True, default=str))
        else:
            _print_text(results, paths)
            faults = sum(len(result.faults) + bool(result.error)
                         for result in results)
            print('gpu-check: %s' % (
                'healthy' if not failed else '%d fault(s) found' % faults))
        return status
