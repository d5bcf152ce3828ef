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

"""Accelerator usage records derived from Nova versioned notifications."""

import fnmatch
import re
import uuid

from oslo_utils import timeutils

from sovereign_ai.gpu import topology
from sovereign_ai.notifications import events
from sovereign_ai.notifications import models

KIND_PASSTHROUGH = 'passthrough_gpu'
KIND_VGPU = 'vgpu'
KIND_CYBORG = 'cyborg_arq'
KIND_NONE = 'none'

EXTRA_SPEC_PCI_ALIAS = 'pci_passthrough:alias'
EXTRA_SPEC_DEVICE_PROFILE = 'accel:device_profile'

# "resources:VGPU", and granular groups such as "resources1:VGPU" or
# "resources_gpu:VGPU".
_RESOURCES_KEY = re.compile(r'^resources(?:\d*|_[A-Za-z0-9_-]+):(?P<rc>.+)$')

# Namespace of the message ids of usage notifications. The same source
# message always yields the same ids, so a source notification delivered
# twice yields duplicates that consumers can drop.
_MESSAGE_ID_NAMESPACE = uuid.UUID('6c1f4a8e-3e0b-4d59-9a55-0d6a7e8e2b31')


class InvalidNotification(ValueError):
    """A notification that cannot give a usage record."""


class Problem:
    """A part of a notification that was skipped, with the reason."""

    def __init__(self, field, reason):
        self.field = field
        self.reason = reason

    def __str__(self):
        return '%s: %s' % (self.field, self.reason)


class Accelerator:
    """One group of identical accelerators that a flavor requests."""

    def __init__(self, kind, model, count, resource_class=None,
                 pci_alias=None, device_profile=None):
        self.kind = kind
        self.model = model
        self.count = count
        self.resource_class = resource_class
        self.pci_alias = pci_alias
        self.device_profile = device_profile

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return 'Accelerator(%r)' % vars(self)


class Extractor:
    """Derive accelerator usage records from Nova notifications.

    :param aliases: PCI aliases, as returned by
        :func:`sovereign_ai.notifications.pci_alias.parse_aliases`.
    :param gpu_resource_classes: shell-style patterns of GPU resource
        classes.
    :param gpu_vendor_ids: PCI vendor ids of GPUs.
    :param model_names: operator overrides of model names.
    """

    def __init__(self, aliases, gpu_resource_classes, gpu_vendor_ids,
                 model_names):
        self.aliases = aliases
        self.gpu_resource_classes = list(gpu_resource_classes)
        self.gpu_vendor_ids = {v.lower() for v in gpu_vendor_ids}
        self.model_names = dict(model_names or {})

    # Flavor extra specs

    def accelerators(self, extra_specs, problems):
        """Return the accelerators that a flavor's extra specs request.

        Invalid parts are appended to ``problems`` and skipped.
        """
        found = []
        found.extend(self._pci_accelerators(extra_specs, problems))
        found.extend(self._resource_accelerators(extra_specs, problems))

        profile = extra_specs.get(EXTRA_SPEC_DEVICE_PROFILE)
        if profile is not None:
            if isinstance(profile, str) and profile.strip():
                profile = profile.strip()
                found.append(Accelerator(
                    KIND_CYBORG, self.model_names.get(profile, profile),
                    None, device_profile=profile))
            else:
                problems.append(Problem(
                    EXTRA_SPEC_DEVICE_PROFILE,
                    'invalid device profile name %r' % (profile,)))
        return found

    def _pci_accelerators(self, extra_specs, problems):
        value = extra_specs.get(EXTRA_SPEC_PCI_ALIAS)
        if value is None:
            return []

        if not isinstance(value, str):
            problems.append(Problem(
                EXTRA_SPEC_PCI_ALIAS, 'invalid value %r' % (value,)))
            return []

        found = []
        for item in value.split(','):
            name, _sep, count_text = item.strip().partition(':')
            name = name.strip()
            count = _parse_count(count_text or '1')
            if not name or count is None:
                problems.append(Problem(
                    EXTRA_SPEC_PCI_ALIAS,
                    'invalid alias request %r: expected <alias>:<positive '
                    'integer>' % item))
                continue

            specs = self.aliases.get(name)
            if not specs:
                problems.append(Problem(
                    EXTRA_SPEC_PCI_ALIAS,
                    'unknown PCI alias %r: it is not defined in [pci] '
                    'alias of this service' % name))
                continue

            model = self._alias_model(name, specs)
            if model is None:
                continue
            found.append(Accelerator(
                KIND_PASSTHROUGH, model, count,
                resource_class=specs[0].resource_class, pci_alias=name))
        return found

    def _alias_model(self, name, specs):
        """Return the model of a GPU alias, or None when not a GPU."""
        if name in self.model_names:
            return self.model_names[name]

        names = set()
        for spec in specs:
            if spec.vendor_id:
                key = '%s:%s' % (spec.vendor_id, spec.product_id)
                override = self.model_names.get(key)
                if override:
                    names.add(override)
                    continue
                if spec.vendor_id not in self.gpu_vendor_ids:
                    return None
                names.add(models.model_name(
                    spec.vendor_id, spec.product_id, self.model_names)
                    or key)
            elif spec.resource_class:
                if not self._is_gpu_class(spec.resource_class):
                    return None
                names.add(self.model_names.get(
                    spec.resource_class, spec.resource_class))
            else:
                return None

        # An alias that matches several products has no single model.
        return names.pop() if len(names) == 1 else name

    def _resource_accelerators(self, extra_specs, problems):
        counts = {}
        for key, value in sorted(extra_specs.items()):
            match = _RESOURCES_KEY.match(key)
            if not match or not self._is_gpu_class(match.group('rc')):
                continue

            count = _parse_count(value)
            if count is None:
                problems.append(Problem(
                    key, 'invalid amount %r: expected a positive integer'
                    % (value,)))
                continue
            resource_class = match.group('rc')
            counts[resource_class] = counts.get(resource_class, 0) + count

        found = []
        for resource_class, count in sorted(counts.items()):
            kind = KIND_VGPU if 'VGPU' in resource_class else KIND_PASSTHROUGH
            found.append(Accelerator(
                kind, self.model_names.get(resource_class, resource_class),
                count, resource_class=resource_class))
        return found

    def _is_gpu_class(self, resource_class):
        return any(fnmatch.fnmatchcase(resource_class, pattern)
                   for pattern in self.gpu_resource_classes)

    # Notifications

    def records(self, message, problems):
        """Return the usage notifications that a Nova notification gives.

        :param message: the oslo.messaging message: a dict with
            ``event_type``, ``payload``, ``message_id`` and ``timestamp``.
        :param problems: a list that receives the skipped parts.
        :returns: a list of dicts with ``message_id``, ``event_type`` and
            ``payload``, empty when the notification is not a usage event
            or the instance has no accelerator.
        :raises InvalidNotification: when the notification is malformed.
        """
        source_event = message.get('event_type')
        usage_event = events.USAGE_EVENTS.get(source_event)
        if usage_event is None:
            return []

        instance = _object_data(message.get('payload'), 'payload')
        flavor = _object_data(instance.get('flavor'), 'payload.flavor',
                              events.FLAVOR_PAYLOAD_MAJOR_VERSION)
        extra_specs = flavor.get('extra_specs')
        if extra_specs is None:
            extra_specs = {}
        if not isinstance(extra_specs, dict):
            raise InvalidNotification(
                'payload.flavor.extra_specs: expected an object, got %r'
                % (extra_specs,))

        accelerators = self.accelerators(extra_specs, problems)
        if not accelerators:
            if source_event not in events.FLAVOR_CHANGE_EVENTS:
                return []
            accelerators = [Accelerator(KIND_NONE, None, 0)]
            usage_event = events.END

        affinity = extra_specs.get(topology.EXTRA_SPEC_AFFINITY)
        if affinity is not None and affinity not in topology.AFFINITY_LEVELS:
            problems.append(Problem(
                topology.EXTRA_SPEC_AFFINITY,
                'invalid affinity level %r' % (affinity,)))
            affinity = None

        base = _base_payload(message, instance, flavor)
        base['gpu_affinity'] = affinity

        records = []
        for index, accelerator in enumerate(accelerators):
            payload = dict(base)
            payload.update(
                accelerator_kind=accelerator.kind,
                model=accelerator.model,
                count=accelerator.count,
                count_known=accelerator.count is not None,
                resource_class=accelerator.resource_class,
                pci_alias=accelerator.pci_alias,
                device_profile=accelerator.device_profile)
            records.append({
                'message_id': usage_message_id(
                    payload['source_message_id'], usage_event, index),
                'event_type': usage_event,
                'payload': payload,
            })
        return records


def usage_message_id(source_message_id, usage_event, index):
    """Return the stable message id of a usage notification."""
    return str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, '%s/%s/%d' % (
        source_message_id, usage_event, index)))


def _parse_count(value):
    try:
        count = int(str(value).strip())
    except ValueError:
        return None
    return count if count > 0 else None


def _object_data(obj, field, major=None):
    """Return the data of a versioned object after checking its version."""
    if not isinstance(obj, dict) or not isinstance(
            obj.get('nova_object.data'), dict):
        raise InvalidNotification(
            '%s: expected a versioned object with nova_object.data' % field)

    name = obj.get('nova_object.name')
    version = str(obj.get('nova_object.version', ''))
    if major is None:
        major = events.PAYLOAD_MAJOR_VERSIONS.get(
            name, events.DEFAULT_PAYLOAD_MAJOR_VERSION)
    if version.split('.')[0] != str(major):
        raise InvalidNotification(
            '%s: unsupported version %s of %s, expected %d.x'
            % (field, version or 'none', name, major))
    return obj['nova_object.data']


def _required(data, key, field):
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidNotification('%s.%s: missing or not a string'
                                  % (field, key))
    return value


def _event_time(message):
    text = message.get('timestamp')
    try:
        when = timeutils.parse_isotime(text) if text else timeutils.utcnow()
    except ValueError:
        raise InvalidNotification('timestamp: invalid time %r' % (text,))
    return timeutils.normalize_time(when).isoformat() + 'Z'


def _base_payload(message, instance, flavor):
    message_id = message.get('message_id')
    if not isinstance(message_id, str) or not message_id:
        raise InvalidNotification('message_id: missing or not a string')

    audit = instance.get('audit_period')
    audit_data = {}
    if isinstance(audit, dict):
        audit_data = audit.get('nova_object.data') or {}

    return {
        'instance_id': _required(instance, 'uuid', 'payload'),
        'project_id': _required(instance, 'tenant_id', 'payload'),
        'user_id': instance.get('user_id'),
        'host': instance.get('host'),
        'node': instance.get('node'),
        'instance_state': instance.get('state'),
        'flavor_name': flavor.get('name'),
        'flavor_id': flavor.get('flavorid'),
        'event_time': _event_time(message),
        'audit_period_beginning': audit_data.get('audit_period_beginning'),
        'audit_period_ending': audit_data.get('audit_period_ending'),
        'source_event_type': message.get('event_type'),
        'source_message_id': message_id,
        'request_id': instance.get('request_id'),
    }
