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

"""Parse ``dcgmi diag -r LEVEL -j`` JSON output.

DCGM 3.x writes ``{"DCGM GPU Diagnostic": {"test_categories": [...]}}`` and
names the GPUs of a result in a ``gpu_ids`` string ("0" or "0,1").
DCGM 4.x writes ``{"DCGM Diagnostic": {...}, "entity_groups": [...],
"metadata": {...}}`` and names one entity per result with ``entity_group``
and ``entity_id``.
"""

import json

from sovereign_ai.gpu.nvidia import common

SOURCE = 'dcgmi diag'

# NOTE: the 4.x layout is read as DCGM's own JSON schema describes it
# (testing/python3/dcgm_diag_schema.json); no captured 4.x output was
# available to test against.

ROOT_3X = 'DCGM GPU Diagnostic'
ROOT_4X = 'DCGM Diagnostic'

# dcgmi returns a negative DCGM status as its exit status, so it reads as
# 256 minus the code: 226 is DCGM_ST_NVVS_ERROR (-30, a test failed) and 205
# is DCGM_ST_NVVS_ISOLATE_ERROR (-51, a failure that calls for draining the
# GPU).
EXIT_STATUS_NAMES = {
    226: 'DCGM_ST_NVVS_ERROR (a diagnostic test failed)',
    205: 'DCGM_ST_NVVS_ISOLATE_ERROR (a failure that requires isolating '
         'the GPU)',
}


def _warnings(result):
    messages = []
    for warning in result.get('warnings') or []:
        if isinstance(warning, dict):
            messages.append(str(warning.get('warning', '')).strip())
        else:
            messages.append(str(warning).strip())
    return [message for message in messages if message]


def _gpus_3x(result):
    ids = result.get('gpu_ids', result.get('gpu_id'))
    if ids is None or ids == '':
        return [None]
    return [int(part) for part in str(ids).split(',') if part.strip()]


def _gpus_4x(result):
    if result.get('entity_group', 'GPU') != 'GPU':
        return [None]
    entity = result.get('entity_id')
    return [None if entity is None else int(entity)]


def parse(text, source=SOURCE):
    """Parse the diagnostic results into one entry per test and GPU.

    :returns: a dict with ``layout`` ('3.x' or '4.x'), ``version``,
        ``runtime_error`` and ``results``: a list of dicts with
        ``category``, ``test``, ``gpu`` (index, or None for a node-wide
        result), ``status`` (lower case: pass, fail, warn, skip) and
        ``info`` and ``warnings`` texts; and ``serials`` (GPU index to
        serial number, 4.x only).
    :raises: ParseError when the output is empty, truncated or not a DCGM
        diagnostic document.
    """
    common.check_text(text, source)
    try:
        document = json.loads(text)
    except ValueError as error:
        raise common.ParseError(
            source, 'the JSON is truncated or malformed (%s)' % error)
    if not isinstance(document, dict):
        raise common.ParseError(source, 'the JSON root is not an object')

    if ROOT_4X in document:
        layout, body, gpus_of = '4.x', document[ROOT_4X], _gpus_4x
    elif ROOT_3X in document:
        layout, body, gpus_of = '3.x', document[ROOT_3X], _gpus_3x
    else:
        raise common.ParseError(
            source, 'neither "%s" nor "%s" is in the JSON'
            % (ROOT_4X, ROOT_3X))

    results = []
    try:
        for category in body.get('test_categories') or []:
            for test in category.get('tests') or []:
                for result in test.get('results') or []:
                    for gpu in gpus_of(result):
                        results.append({
                            'category': category.get('category'),
                            'test': test.get('name'),
                            'gpu': gpu,
                            'status': str(result.get('status', '')).lower(),
                            'info': result.get('info'),
                            'warnings': _warnings(result),
                        })
    except (AttributeError, TypeError, ValueError) as error:
        raise common.ParseError(
            source, 'unexpected structure in the test results (%s)' % error)

    serials = {}
    for group in document.get('entity_groups') or []:
        if group.get('entity_group') != 'GPU':
            continue
        for entity in group.get('entities') or []:
            if 'entity_id' in entity:
                serials[int(entity['entity_id'])] = entity.get('serial_num')

    metadata = document.get('metadata') or {}
    version = metadata.get('version') or body.get('version')
    runtime_error = body.get('runtime_error') or document.get(
        'runtime_error')
    return {'layout': layout, 'version': version,
            'runtime_error': runtime_error, 'results': results,
            'serials': serials}
