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

"""Run a GPU stress tool while sampling the GPUs, and judge the result.

The stress tool runs in a thread through :class:`validation.Collector`, so
its timeout kills it. Meanwhile the calling thread samples every GPU with
``nvidia-smi --query-gpu`` at the requested interval.
"""

import collections
import os
import re
import shutil
import statistics
import threading

from oslo_config import cfg
from oslo_log import log as logging

from sovereign_ai.gpu.nvidia import common
from sovereign_ai.gpu.nvidia import dcgm as dcgm_parser
from sovereign_ai.gpu.nvidia import gpu_burn as gpu_burn_parser
from sovereign_ai.gpu.nvidia import query_csv
from sovereign_ai.ironic import args
from sovereign_ai.ironic import checks
from sovereign_ai.ironic import tools
from sovereign_ai.ironic import validation

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

# Drivers before 535 know only the clocks_throttle_reasons.* names, and
# drivers from 535 on also accept clocks_event_reasons.*. The old names are
# tried first; when a driver rejects them, sample() retries with the new
# names.
SAMPLE_FIELDS = (
    'index', 'pci.bus_id', 'serial', 'temperature.gpu', 'power.draw',
    'utilization.gpu', 'clocks.sm',
    'clocks_throttle_reasons.hw_slowdown',
    'clocks_throttle_reasons.hw_thermal_slowdown',
    'clocks_throttle_reasons.hw_power_brake_slowdown',
    'clocks_throttle_reasons.sw_thermal_slowdown',
    'clocks_throttle_reasons.sw_power_cap',
    'ecc.errors.uncorrected.volatile.total',
    'pcie.link.gen.current', 'pcie.link.gen.max',
    'pcie.link.width.current', 'pcie.link.width.max',
)
EVENT_REASON_SAMPLE_FIELDS = tuple(
    field.replace('clocks_throttle_reasons.', 'clocks_event_reasons.')
    for field in SAMPLE_FIELDS)

# A GPU counts as loaded in a sample at this utilization (percent) or more.
LOADED_UTILIZATION = 50

_DCGM_GFLOPS = re.compile(
    r'GPU (\d+) calculated at approximately ([\d.]+) gigaflops')


def sample(collector, name):
    """Take one nvidia-smi sample of every GPU.

    :returns: a list of dicts keyed by query field name.
    """
    for fields in (SAMPLE_FIELDS, EVENT_REASON_SAMPLE_FIELDS):
        argv = validation.smi_argv('--query-gpu=%s' % ','.join(fields),
                                   '--format=csv')
        stdout, stderr, status = collector.run(name, argv)
        if status == 0 or 'is not a valid field' not in stdout + stderr:
            break
    if status != 0:
        raise tools.ToolError(
            'nvidia-smi --query-gpu exited with status %s: %s'
            % (status, (stderr or stdout).strip()[:200]))
    return query_csv.parse(stdout)


def choose_backend(requested):
    """Return 'dcgm' or 'gpu-burn' for the requested backend.

    :raises: tools.ToolMissing when the requested tool is not installed.
    """
    options = CONF.sovereign_ai_ironic
    available = {
        'dcgm': shutil.which(options.dcgmi_command) is not None,
        'gpu-burn': shutil.which(options.gpu_burn_command) is not None,
    }
    if requested == 'auto':
        for backend in ('dcgm', 'gpu-burn'):
            if available[backend]:
                return backend
        raise tools.ToolMissing(
            'no burn-in tool was found: neither %s nor %s is installed'
            % (options.dcgmi_command, options.gpu_burn_command))
    if not available[requested]:
        command = (options.dcgmi_command if requested == 'dcgm'
                   else options.gpu_burn_command)
        raise tools.ToolMissing('%s (backend %s) was not found: install it '
                                'in the ramdisk' % (command, requested))
    return requested


def _gpu_burn_argv(settings):
    command = shutil.which(CONF.sovereign_ai_ironic.gpu_burn_command)
    argv = [command]
    if settings['gpu_burn_doubles']:
        argv.append('-d')
    if settings['gpu_burn_tensor_cores']:
        argv.append('-tc')
    argv += ['-m', settings['gpu_burn_memory'], str(settings['duration'])]
    return argv


def _timeout(backend, settings):
    if settings.get('timeout'):
        return settings['timeout']
    if backend == 'dcgm':
        return args.DCGM_LEVEL_TIMEOUTS[settings['dcgm_level']]
    return settings['duration'] + 600


def _start(collector, backend, settings, outcome):
    timeout = _timeout(backend, settings)
    if backend == 'dcgm':
        argv = [CONF.sovereign_ai_ironic.dcgmi_command, 'diag', '-r',
                str(settings['dcgm_level']), '-j']
        kwargs = {}
    else:
        argv = _gpu_burn_argv(settings)
        # gpu-burn numbers GPUs in CUDA order; PCI bus order makes its
        # indexes match nvidia-smi's. It loads compare.ptx from its cwd,
        # which is next to the real executable, not next to a symlink.
        kwargs = {'env': {'CUDA_DEVICE_ORDER': 'PCI_BUS_ID'},
                  'cwd': os.path.dirname(os.path.realpath(argv[0]))}

    def work():
        try:
            outcome['result'] = collector.run(backend, argv, timeout=timeout,
                                              **kwargs)
        except tools.ToolError as error:
            outcome['error'] = error

    thread = threading.Thread(target=work, name='sovereign-ai-burnin')
    thread.daemon = True
    thread.start()
    return thread


def _identity(gpus_by_index, index):
    gpu = gpus_by_index.get(index)
    if gpu is None:
        return {'index': index, 'bus_id': None, 'serial': None}
    return gpu


def judge_gpu_burn(output, gpus_by_index, settings):
    """Turn a gpu-burn log into findings and per-GPU throughput."""
    findings = []
    result = gpu_burn_parser.parse(output)
    for message in result['fatal']:
        findings.append(checks.finding(
            checks.FAULT, 'gpu_burn', 'gpu_burn printed "%s"' % message))
    if result['tested'] is None:
        findings.append(checks.finding(
            checks.FAULT, 'gpu_burn', 'gpu_burn printed no per-GPU result '
            '("Tested N GPUs"), so the run did not complete'))

    listed = len(gpus_by_index)
    if result['tested'] is not None and listed and (
            result['tested'] != listed):
        findings.append(checks.finding(
            checks.FAULT, 'gpu_count', 'gpu_burn tested %d of the %d GPUs '
            'that nvidia-smi lists' % (result['tested'], listed)))

    throughput = {}
    for index, entry in sorted(result['gpus'].items()):
        gpu = _identity(gpus_by_index, index)
        problems = []
        if entry['verdict'] == 'FAULTY':
            problems.append('gpu_burn reports FAULTY (computation errors)')
        elif entry['verdict'] is None and result['tested'] is not None:
            problems.append('gpu_burn printed no verdict for this GPU')
        if entry['died']:
            problems.append('its gpu_burn worker died')
        if entry['errors']:
            problems.append('%d computation errors (threshold: 0)'
                            % entry['errors'])
        if not entry['processed'] or not entry['gflops']:
            problems.append('no progress (%s iterations, %s Gflop/s; '
                            'threshold: above 0)'
                            % (entry['processed'], entry['gflops']))
        else:
            throughput[index] = entry['gflops']
        for problem in problems:
            findings.append(checks.finding(checks.FAULT, 'gpu_burn', problem,
                                           gpu))
    return findings, throughput, result


def judge_dcgm(output, exit_status, gpus_by_index):
    """Turn ``dcgmi diag -j`` output into findings and throughput."""
    findings = []
    result = None
    if exit_status in dcgm_parser.EXIT_STATUS_NAMES:
        findings.append(checks.finding(
            checks.FAULT, 'dcgm', 'dcgmi diag exited %d: %s'
            % (exit_status, dcgm_parser.EXIT_STATUS_NAMES[exit_status])))

    if not output.lstrip().startswith('{'):
        # dcgmi prints a plain message when it cannot reach nv-hostengine
        # or cannot start the diagnostic.
        first_line = (output.strip().splitlines() or [''])[0][:200]
        findings.append(checks.finding(
            checks.FAULT, 'dcgm', 'dcgmi diag exited %s and printed no JSON '
            'results: "%s"' % (exit_status, first_line)))
        return findings, {}, None
    try:
        result = dcgm_parser.parse(output)
    except common.ParseError as error:
        findings.append(checks.finding(checks.FAULT, 'dcgm', str(error)))
        return findings, {}, None

    if result['runtime_error']:
        findings.append(checks.finding(
            checks.FAULT, 'dcgm', 'DCGM runtime error: %s'
            % result['runtime_error']))
    throughput = {}
    for entry in result['results']:
        gpu = (None if entry['gpu'] is None
               else _identity(gpus_by_index, entry['gpu']))
        detail = '; '.join(entry['warnings']) or entry['info'] or ''
        if entry['status'] == 'fail':
            findings.append(checks.finding(
                checks.FAULT, 'dcgm', 'DCGM test "%s" failed%s'
                % (entry['test'], ': %s' % detail[:200] if detail else ''),
                gpu))
        elif entry['status'] == 'warn':
            findings.append(checks.finding(
                checks.WARNING, 'dcgm', 'DCGM test "%s" warned%s'
                % (entry['test'], ': %s' % detail[:200] if detail else ''),
                gpu))
        for match in _DCGM_GFLOPS.finditer(entry['info'] or ''):
            throughput[int(match.group(1))] = float(match.group(2))
    return findings, throughput, result


def judge_throughput(throughput, gpus_by_index, deficit_percent):
    """Fail the GPUs more than ``deficit_percent`` below the node median."""
    if len(throughput) < 2:
        return [], None
    median = statistics.median(throughput.values())
    floor = median * (1 - deficit_percent / 100.0)
    findings = []
    for index, value in sorted(throughput.items()):
        if value < floor:
            findings.append(checks.finding(
                checks.FAULT, 'throughput', '%.0f Gflop/s is %.1f%% below '
                'the node median of %.0f Gflop/s (threshold: %.1f%%)'
                % (value, 100.0 * (median - value) / median, median,
                   deficit_percent), _identity(gpus_by_index, index)))
    return findings, median


def judge_samples(baseline, samples, settings):
    """Check the samples taken under load against the baseline sample."""
    findings = []
    failing = set(settings['fail_slowdown_reasons'])
    baseline_by_bus = {row.get('pci.bus_id'): row for row in baseline}
    rows_by_bus = {}
    for taken in samples:
        for row in taken:
            rows_by_bus.setdefault(row.get('pci.bus_id'), []).append(row)

    summary = {}
    for bus_id, rows in sorted(rows_by_bus.items()):
        first = baseline_by_bus.get(bus_id, rows[0])
        gpu = {'index': first.get('index'),
               'bus_id': common.normalize_bus_id(bus_id),
               'serial': first.get('serial')}
        temperatures = [row['temperature.gpu'] for row in rows
                        if isinstance(row.get('temperature.gpu'),
                                      (int, float))]
        power = [row['power.draw'] for row in rows
                 if isinstance(row.get('power.draw'), (int, float))]
        seen = sorted({reason for row in rows
                       for reason in args.CLOCKS_EVENT_REASONS
                       if row.get('clocks_event_reasons.%s' % reason)})
        summary[gpu['index']] = {
            'bus_id': gpu['bus_id'], 'samples': len(rows),
            'max_temperature': max(temperatures) if temperatures else None,
            'max_power_draw': max(power) if power else None,
            'clocks_event_reasons': seen,
        }

        for reason in seen:
            if reason in failing:
                count = sum(1 for row in rows
                            if row.get('clocks_event_reasons.%s' % reason))
                findings.append(checks.finding(
                    checks.FAULT, 'clocks_event_reasons', 'clocks event '
                    'reason %s was active under load in %d of %d samples '
                    '(failing reasons: %s)' % (reason, count, len(rows),
                                               ', '.join(sorted(failing))),
                    gpu))

        limit = settings.get('max_temperature')
        if limit and temperatures and max(temperatures) > limit:
            findings.append(checks.finding(
                checks.FAULT, 'temperature', 'temperature reached %d C '
                '(threshold: %d C)' % (max(temperatures), limit), gpu))

        errors = [row['ecc.errors.uncorrected.volatile.total'] for row in rows
                  if isinstance(row.get(
                      'ecc.errors.uncorrected.volatile.total'), int)]
        start = first.get('ecc.errors.uncorrected.volatile.total')
        if errors and isinstance(start, int):
            added = max(errors) - start
            if added > settings['max_new_uncorrectable_ecc']:
                findings.append(checks.finding(
                    checks.FAULT, 'ecc_errors', '%d new uncorrectable ECC '
                    'errors during the run (threshold: %d)'
                    % (added, settings['max_new_uncorrectable_ecc']), gpu))

        if settings['check_pcie_link']:
            findings.extend(_judge_link(rows, gpu))
    return findings, summary


def _judge_link(rows, gpu):
    loaded = [row for row in rows
              if not isinstance(row.get('utilization.gpu'), int)
              or row['utilization.gpu'] >= LOADED_UTILIZATION]
    if not loaded:
        return [checks.finding(
            checks.WARNING, 'pcie_link', 'no sample caught the GPU at %d%% '
            'utilization or more, so its PCIe link was not checked under '
            'load' % LOADED_UTILIZATION, gpu)]
    findings = []
    for current, maximum, label in (
            ('pcie.link.gen.current', 'pcie.link.gen.max', 'generation'),
            ('pcie.link.width.current', 'pcie.link.width.max', 'width')):
        values = [row[current] for row in loaded
                  if isinstance(row.get(current), int)]
        limits = [row[maximum] for row in loaded
                  if isinstance(row.get(maximum), int)]
        if values and limits and max(values) < max(limits):
            findings.append(checks.finding(
                checks.FAULT, 'pcie_link', 'PCIe link %s peaked at %d under '
                'load (threshold: the maximum, %d)'
                % (label, max(values), max(limits)), gpu))
    return findings


def _new_events(before, after):
    # Compare contents, not positions: the kernel ring buffer may drop old
    # lines during a long run.
    seen = collections.Counter(
        (event['bus_id'], event['xid'], event['message']) for event in before)
    added = []
    for event in after:
        key = (event['bus_id'], event['xid'], event['message'])
        if seen[key]:
            seen[key] -= 1
        else:
            added.append(event)
    return added


def run(collector, settings):
    """Run the burn-in and return (report data, findings).

    :raises: tools.ToolError when nvidia-smi or the stress tool is missing,
        or nvidia-smi cannot take the baseline sample.
    """
    backend = choose_backend(settings['backend'])
    baseline = sample(collector, 'sample-baseline')
    gpus_by_index = {}
    for row in baseline:
        gpus_by_index[row.get('index')] = {
            'index': row.get('index'),
            'bus_id': common.normalize_bus_id(row.get('pci.bus_id')),
            'serial': row.get('serial')}
    xids_before = validation.read_xids(collector, 'dmesg-before')

    findings = []
    expected = settings.get('expected_gpu_count')
    if expected and len(baseline) != expected:
        findings.append(checks.finding(
            checks.FAULT, 'gpu_count', 'nvidia-smi lists %d GPUs, expected %d'
            % (len(baseline), expected)))

    outcome = {}
    thread = _start(collector, backend, settings, outcome)
    samples = []
    while thread.is_alive():
        thread.join(settings['sample_interval'])
        if not thread.is_alive():
            break
        try:
            samples.append(sample(collector, 'sample-%d' % len(samples)))
        except (tools.ToolError, common.ParseError) as error:
            findings.append(checks.finding(
                checks.FAULT, 'sampling', 'sampling the GPUs under load '
                'failed: %s' % error))
            thread.join()
            break

    if 'error' in outcome:
        raise outcome['error']
    output, stderr, exit_status = outcome['result']

    if backend == 'dcgm':
        tool_findings, throughput, parsed = judge_dcgm(
            output, exit_status, gpus_by_index)
    else:
        tool_findings, throughput, parsed = judge_gpu_burn(
            output + '\n' + stderr, gpus_by_index, settings)
    findings.extend(tool_findings)

    deficit_findings, median = judge_throughput(
        throughput, gpus_by_index, settings['max_throughput_deficit_percent'])
    findings.extend(deficit_findings)

    sample_findings, sample_summary = judge_samples(
        baseline, samples, settings)
    findings.extend(sample_findings)
    if not samples:
        findings.append(checks.finding(
            checks.WARNING, 'sampling', 'the run ended before the first '
            'sample; lower sample_interval to check temperature, clocks and '
            'the PCIe link under load'))

    xids_after = validation.read_xids(collector, 'dmesg-after')
    new_events = _new_events(xids_before, xids_after)
    findings.extend(checks.check_xids(
        list(gpus_by_index.values()), new_events, settings['critical_xids'],
        during_run=True))

    data = {
        'backend': backend,
        'gpu_count': len(baseline),
        'exit_status': exit_status,
        'throughput_gflops': {str(index): value
                              for index, value in sorted(throughput.items())},
        'median_gflops': median,
        'samples': len(samples),
        'gpus': {str(index): value
                 for index, value in sorted(sample_summary.items(),
                                            key=lambda item: str(item[0]))},
        'new_xids': new_events,
        'tool_result': parsed,
    }
    return data, findings
