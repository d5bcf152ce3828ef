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

"""Nova-shaped notifications for the notification tests.

Nova's sample notifications use their own ``$ref`` convention: a dict
with ``"$ref": "<file>#"`` is replaced by the referenced file, and the
other keys of that dict are merged recursively over it. A standard JSON
Reference resolver drops those keys, so the samples are resolved here.
"""

import copy
import json
import os
import uuid

from sovereign_ai.tests import base

NOVA_SAMPLES = ('fixtures', 'notifications')

NOVA_SAMPLE_EVENTS = (
    'instance.create.end',
    'instance.delete.end',
    'instance.exists',
    'instance.live_migration_post_dest.end',
    'instance.resize_finish.end',
    'instance.shelve_offload.end',
    'instance.unshelve.end',
)

PCI_ALIASES = [
    '{"name": "a100", "vendor_id": "10de", "product_id": "20b0"}',
    '{"name": "h100", "vendor_id": "10de", "product_id": "2330"}',
    '{"name": "nic", "vendor_id": "8086", "product_id": "1572"}',
]


def _merge(target, overrides):
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def resolve(document, directory):
    """Resolve Nova's ``$ref`` keys of ``document`` recursively."""
    if isinstance(document, list):
        return [resolve(item, directory) for item in document]
    if not isinstance(document, dict):
        return document

    resolved = {key: resolve(value, directory)
                for key, value in document.items() if key != '$ref'}
    if '$ref' not in document:
        return resolved

    path = os.path.join(directory, document['$ref'].split('#')[0])
    with open(path) as sample:
        referenced = resolve(json.load(sample), os.path.dirname(path))
    return _merge(referenced, resolved)


def load_sample(path):
    """Load a sample notification file and resolve its references."""
    with open(path) as sample:
        return resolve(json.load(sample), os.path.dirname(path))


def nova_sample(test, event_type):
    """Return Nova's sample of ``event_type``; skip when it is absent."""
    name = event_type.replace('.', '-', 1).replace('.end', '-end')
    path = base.skip_unless_shared(test, *NOVA_SAMPLES, name + '.json')
    return load_sample(path)


def own_sample():
    """Return this repository's instance.create.end sample."""
    return load_sample(base.fixture_path(
        'notifications', 'instance-create-end.json'))


def as_message(sample, extra_specs=None, event_type=None, message_id=None,
               timestamp='2026-11-02 10:00:00.000000', instance_id=None,
               project_id=None):
    """Return ``sample`` as oslo.messaging passes it to a driver.

    :param extra_specs: extra specs that replace the flavor's.
    """
    message = copy.deepcopy(sample)
    data = message['payload']['nova_object.data']
    if extra_specs is not None:
        data['flavor']['nova_object.data']['extra_specs'] = dict(extra_specs)
    if event_type is not None:
        message['event_type'] = event_type
    if instance_id is not None:
        data['uuid'] = instance_id
    if project_id is not None:
        data['tenant_id'] = project_id
    message['message_id'] = message_id or str(uuid.uuid4())
    message['timestamp'] = timestamp
    return message
