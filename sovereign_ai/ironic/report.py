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

"""Write step reports and build the summary that becomes last_error.

Ironic keeps only the error text of a failed step, not its return value.
So the full report and the raw tool output go to files under the log
directory, and IPA includes that directory in the ramdisk logs.
"""

import datetime
import json
import os

from oslo_log import log as logging

from sovereign_ai.ironic import checks

LOG = logging.getLogger(__name__)


def timestamp():
    """Return the current UTC time as 20261204T201500Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y%m%dT%H%M%SZ')


def write(log_dir, step, report, raw):
    """Write ``report`` as JSON and each raw output as a text file.

    :returns: the report path, or None when the directory is not writable
        (the failure is logged; the step verdict does not depend on it).
    """
    stamp = report.get('started_at') or timestamp()
    base = os.path.join(log_dir, '%s-%s' % (step, stamp))
    try:
        os.makedirs(base, exist_ok=True)
        for name, text in sorted(raw.items()):
            path = os.path.join(base, '%s.txt' % name.replace('/', '_'))
            with open(path, 'w') as handle:
                handle.write(text or '')
        path = base + '.json'
        with open(path, 'w') as handle:
            json.dump(report, handle, indent=2, sort_keys=True, default=str)
    except OSError as error:
        LOG.error('The %s report could not be written to %s: %s',
                  step, log_dir, error)
        return None
    return path


def _gpu_label(entry):
    parts = [part for part in (entry['bus_id'],
                               entry['serial'] and 'serial %s'
                               % entry['serial']) if part]
    label = 'GPU %s' % entry['gpu']
    if parts:
        label += ' (%s)' % ', '.join(parts)
    return label


def summarize(step, findings, gpu_count, report_path):
    """Return the one-paragraph summary of a step's faults.

    Each failing GPU is named by index, PCI bus id and serial, followed by
    what failed and the threshold.
    """
    faults = [entry for entry in findings
              if entry['severity'] == checks.FAULT]
    by_target = {}
    for entry in faults:
        key = None if entry['gpu'] is None else entry['gpu']
        by_target.setdefault(key, []).append(entry)

    failing_gpus = sorted(key for key in by_target if key is not None)
    parts = []
    if None in by_target:
        parts.append('Node: %s.' % '; '.join(
            entry['message'] for entry in by_target[None]))
    for key in failing_gpus:
        entries = by_target[key]
        parts.append('%s: %s.' % (_gpu_label(entries[0]), '; '.join(
            entry['message'] for entry in entries)))
    head = '%s found %d fault(s) on %d of %s GPU(s).' % (
        step, len(faults), len(failing_gpus),
        gpu_count if gpu_count is not None else 'unknown')
    tail = 'Report: %s' % (report_path or 'not written (see the agent log)')
    return ' '.join([head] + parts + [tail])


def compact(step, findings, gpu_count, report_path, extra=None):
    """Return the step's return value: counts and the report path."""
    result = {
        'step': step,
        'gpus': gpu_count,
        'faults': sum(1 for entry in findings
                      if entry['severity'] == checks.FAULT),
        'warnings': sum(1 for entry in findings
                        if entry['severity'] == checks.WARNING),
        'report': report_path,
    }
    result.update(extra or {})
    return result
