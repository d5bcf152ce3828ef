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

"""Nova versioned notification events that start, stop or restate usage.

Nova keeps an instance's accelerators allocated from the end of its
creation until it is deleted or offloaded from a shelve, including while
it is stopped or shelved without offload, so those states are not events
here.
"""

START = 'accelerator.usage.start'
END = 'accelerator.usage.end'
EXISTS = 'accelerator.usage.exists'

#: Source event type to usage event type. A start on an instance that
#: already has an open usage interval replaces that interval. Resizes,
#: reverts, rebuilds and live migrations restate the accelerators of the
#: instance on its new host or flavor this way. Evacuations end with
#: instance.rebuild.end on the destination host.
USAGE_EVENTS = {
    'instance.create.end': START,
    'instance.unshelve.end': START,
    'instance.restore.end': START,
    'instance.rebuild.end': START,
    'instance.resize_finish.end': START,
    'instance.resize_revert.end': START,
    'instance.live_migration_post_dest.end': START,
    'instance.delete.end': END,
    'instance.soft_delete.end': END,
    'instance.shelve_offload.end': END,
    'instance.exists': EXISTS,
}

#: Events after which an instance may hold no accelerator although it held
#: some before: the flavor changed. For these the driver sends an end
#: record with count 0 when the new flavor requests no accelerator, so
#: consumers close the interval that the old flavor opened.
FLAVOR_CHANGE_EVENTS = frozenset([
    'instance.resize_finish.end',
    'instance.resize_revert.end',
])

#: Supported major version per payload object name. Subclasses of Nova's
#: InstancePayload that are not listed must have major version 1.
PAYLOAD_MAJOR_VERSIONS = {
    'InstancePayload': 1,
    'InstanceActionPayload': 1,
    'InstanceCreatePayload': 1,
    'InstanceActionRebuildPayload': 1,
    'InstanceActionResizePrepPayload': 1,
    'InstanceExistsPayload': 2,
}
DEFAULT_PAYLOAD_MAJOR_VERSION = 1
FLAVOR_PAYLOAD_MAJOR_VERSION = 1
