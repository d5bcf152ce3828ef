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

"""Parse gpu-burn (github.com/wilicc/gpu-burn) output.

gpu-burn exits 0 even when it prints ``GPU n: FAULTY``, and prints
``GPU n: OK`` for a GPU whose test never started (0 Gflop/s), so the verdict
comes from the per-GPU summary lines and from the progress lines
(``proc'd: N (X Gflop/s) - ...  errors: E - ...``), never from the exit
status.
"""

import re

from sovereign_ai.gpu.nvidia import common

SOURCE = 'gpu_burn'

_PROGRESS = re.compile(r"proc'd:(?P<procd>.*?)errors:(?P<errors>.*?)"
                       r"(?:temps:(?P<temps>.*))?$")
_PROCESSED = re.compile(r'(-?\d+) \((-?[\d.]+) Gflop/s\)')
# An error count, then " (WARNING!)" when it is non-zero or " (DIED!)"
# when the worker process is gone.
_ERROR_COUNT = re.compile(r'(-?\d+)\s*(?:\((\w+)!\))?')
_VERDICT = re.compile(r'^\s*GPU (\d+): (OK|FAULTY)\s*$')
_TESTED = re.compile(r'^Tested (\d+) GPUs:')
_GPU_LIST = re.compile(r'^GPU (\d+): (.*?) \(UUID: ([^)]*)\)\s*$')

# Messages that fail the whole run, even when every GPU is reported OK.
FATAL_MESSAGES = (
    'No clients are alive',
    'No CUDA devices',
    "Couldn't init a GPU test",
    'Failure during compute',
    'terminate called',
)


def parse(text, source=SOURCE):
    """Parse a gpu-burn log into per-GPU results.

    Progress lines are separated by carriage returns; the last one gives the
    final counts, and the highest processed count seen is kept too.

    :returns: a dict with ``gpus`` (GPU index to a dict with ``name``,
        ``uuid``, ``verdict`` (OK, FAULTY or None when the summary is
        missing), ``processed`` (highest count seen), ``gflops`` (last
        value), ``errors`` (last value), ``died`` (a DIED! marker was
        printed) and ``temperature``), ``tested`` (the "Tested N GPUs" count
        or None), ``progress_lines`` and ``fatal`` (messages from
        :data:`FATAL_MESSAGES` found in the log).
    :raises: ParseError when the output is empty.
    """
    common.check_text(text, source)
    gpus = {}

    def gpu(index):
        return gpus.setdefault(index, {
            'name': None, 'uuid': None, 'verdict': None, 'processed': None,
            'gflops': None, 'errors': None, 'died': False,
            'temperature': None})

    tested = None
    progress_lines = 0
    lines = text.replace('\r', '\n').splitlines()
    for line in lines:
        listed = _GPU_LIST.match(line.strip())
        if listed:
            entry = gpu(int(listed.group(1)))
            entry['name'] = listed.group(2)
            entry['uuid'] = listed.group(3)
            continue

        progress = _PROGRESS.search(line)
        if progress:
            progress_lines += 1
            processed = _PROCESSED.finditer(progress.group('procd'))
            for index, match in enumerate(processed):
                entry = gpu(index)
                count = int(match.group(1))
                if entry['processed'] is None or count > entry['processed']:
                    entry['processed'] = count
                entry['gflops'] = float(match.group(2))
                if count < 0:
                    entry['died'] = True
            errors = _ERROR_COUNT.finditer(progress.group('errors'))
            for index, match in enumerate(errors):
                entry = gpu(index)
                entry['errors'] = int(match.group(1))
                if match.group(2) == 'DIED':
                    entry['died'] = True
            temps = (progress.group('temps') or '').split(' - ')
            for index, field in enumerate(temps):
                if index in gpus:
                    gpus[index]['temperature'] = common.to_float(field)
            continue

        summary = _TESTED.match(line.strip())
        if summary:
            tested = int(summary.group(1))
            continue
        verdict = _VERDICT.match(line)
        if verdict:
            gpu(int(verdict.group(1)))['verdict'] = verdict.group(2)

    fatal = [message for message in FATAL_MESSAGES if message in text]
    return {'gpus': gpus, 'tested': tested,
            'progress_lines': progress_lines, 'fatal': fatal}
