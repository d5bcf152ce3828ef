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

"""Usage records derived from Nova notifications."""

import ddt

from sovereign_ai.notifications import events
from sovereign_ai.notifications import pci_alias
from sovereign_ai.notifications import usage
from sovereign_ai.tests import base
from sovereign_ai.tests.unit.notifications import samples

A100_SPECS = {'pci_passthrough:alias': 'a100:2'}


def make_extractor(model_names=None, aliases=samples.PCI_ALIASES):
    return usage.Extractor(
        pci_alias.parse_aliases(aliases), ['VGPU', 'CUSTOM_*GPU*'],
        ['10de', '1002'], model_names or {})


class TestAccelerators(base.TestCase):

    def _accelerators(self, extra_specs, **kwargs):
        problems = []
        found = make_extractor(**kwargs).accelerators(extra_specs, problems)
        return found, [str(problem) for problem in problems]

    def test_pci_alias_model(self):
        found, problems = self._accelerators(
            {'pci_passthrough:alias': 'a100:2, h100:1'})
        self.assertEqual([], problems)
        self.assertEqual(
            [usage.Accelerator(usage.KIND_PASSTHROUGH, 'A100-SXM4-40GB', 2,
                               pci_alias='a100'),
             usage.Accelerator(usage.KIND_PASSTHROUGH, 'H100-SXM5-80GB', 1,
                               pci_alias='h100')], found)

    def test_pci_alias_without_count(self):
        found, _problems = self._accelerators(
            {'pci_passthrough:alias': 'a100'})
        self.assertEqual(1, found[0].count)

    def test_pci_alias_not_gpu(self):
        found, problems = self._accelerators(
            {'pci_passthrough:alias': 'nic:2'})
        self.assertEqual([], found)
        self.assertEqual([], problems)

    def test_model_override_by_product(self):
        found, _problems = self._accelerators(
            {'pci_passthrough:alias': 'h200:8'},
            aliases=['{"name": "h200", "vendor_id": "10de", '
                     '"product_id": "2335"}'],
            model_names={'10de:2335': 'H200-SXM-141GB'})
        self.assertEqual('H200-SXM-141GB', found[0].model)

    def test_unknown_product_keeps_ids(self):
        found, _problems = self._accelerators(
            {'pci_passthrough:alias': 'new:1'},
            aliases=['{"name": "new", "vendor_id": "10DE", '
                     '"product_id": "ABCD"}'])
        self.assertEqual('10de:abcd', found[0].model)

    def test_alias_resource_class(self):
        found, _problems = self._accelerators(
            {'pci_passthrough:alias': 'rc:1'},
            aliases=['{"name": "rc", "resource_class": "CUSTOM_A100_GPU"}'])
        self.assertEqual('CUSTOM_A100_GPU', found[0].model)
        self.assertEqual('CUSTOM_A100_GPU', found[0].resource_class)

    def test_vgpu_and_custom_classes(self):
        found, problems = self._accelerators({
            'resources:VGPU': '1',
            'resources1:CUSTOM_NVIDIA_A16_VGPU': '2',
            'resources_big:CUSTOM_H100_GPU': '4',
            'resources:VCPU': '8'},
            model_names={'CUSTOM_H100_GPU': 'H100-SXM5-80GB'})
        self.assertEqual([], problems)
        self.assertEqual(
            [(usage.KIND_PASSTHROUGH, 'H100-SXM5-80GB', 4),
             (usage.KIND_VGPU, 'CUSTOM_NVIDIA_A16_VGPU', 2),
             (usage.KIND_VGPU, 'VGPU', 1)],
            [(a.kind, a.model, a.count) for a in found])

    def test_device_profile_count_unknown(self):
        found, _problems = self._accelerators(
            {'accel:device_profile': 'gpu-a100-1'})
        self.assertEqual(usage.KIND_CYBORG, found[0].kind)
        self.assertIsNone(found[0].count)
        self.assertEqual('gpu-a100-1', found[0].device_profile)


@ddt.ddt
class TestProblems(base.TestCase):

    @ddt.data(
        ({'pci_passthrough:alias': 'missing:1'}, 'unknown PCI alias'),
        ({'pci_passthrough:alias': 'a100:-1'}, "invalid alias request"),
        ({'pci_passthrough:alias': 'a100:two'}, "invalid alias request"),
        ({'pci_passthrough:alias': 'a100:0'}, "invalid alias request"),
        ({'resources:VGPU': '-2'}, 'invalid amount'),
        ({'resources:VGPU': 'many'}, 'invalid amount'),
        ({'accel:device_profile': ''}, 'invalid device profile'),
    )
    @ddt.unpack
    def test_invalid_part_skipped(self, extra_specs, reason):
        problems = []
        found = make_extractor().accelerators(extra_specs, problems)
        self.assertEqual([], found)
        self.assertEqual(1, len(problems))
        self.assertIn(reason, str(problems[0]))

    def test_valid_parts_kept(self):
        problems = []
        found = make_extractor().accelerators(
            {'pci_passthrough:alias': 'missing:1,a100:2'}, problems)
        self.assertEqual(1, len(problems))
        self.assertEqual(2, found[0].count)


@ddt.ddt
class TestRecords(base.TestCase):

    def setUp(self):
        super().setUp()
        self.extractor = make_extractor()
        self.problems = []

    def _records(self, message):
        return self.extractor.records(message, self.problems)

    def test_own_sample(self):
        message = samples.as_message(samples.own_sample(),
                                     message_id='src-1')
        records = self._records(message)

        self.assertEqual(1, len(records))
        record = records[0]
        payload = record['payload']
        self.assertEqual(events.START, record['event_type'])
        self.assertEqual(usage.usage_message_id('src-1', events.START, 0),
                         record['message_id'])
        self.assertEqual('0f5c6a52-9a43-4c0e-8a64-3d2b8f1e7c11',
                         payload['instance_id'])
        self.assertEqual('3a9d0c1e5f2b4e7d8c6a1b0f9e8d7c6b',
                         payload['project_id'])
        self.assertEqual('gpu-node-07', payload['host'])
        self.assertEqual('gpu-node-07.example.org', payload['node'])
        self.assertEqual('gpu.a100x4', payload['flavor_name'])
        self.assertEqual('A100-SXM4-40GB', payload['model'])
        self.assertEqual(4, payload['count'])
        self.assertEqual('nvlink', payload['gpu_affinity'])
        self.assertEqual('2026-11-02T10:00:00Z', payload['event_time'])
        self.assertEqual('src-1', payload['source_message_id'])
        self.assertEqual('req-1b5e9f1a-7c3d-4e2f-9a8b-6c5d4e3f2a1b',
                         payload['request_id'])

    def test_message_id_stable(self):
        message = samples.as_message(samples.own_sample())
        self.assertEqual(self._records(message)[0]['message_id'],
                         self._records(message)[0]['message_id'])

    def test_no_accelerator_nothing(self):
        message = samples.as_message(samples.own_sample(),
                                     extra_specs={'hw:cpu_policy': 'shared'})
        self.assertEqual([], self._records(message))

    def test_resize_to_no_gpu_ends(self):
        message = samples.as_message(
            samples.own_sample(), extra_specs={},
            event_type='instance.resize_finish.end')
        records = self._records(message)
        self.assertEqual(events.END, records[0]['event_type'])
        self.assertEqual(0, records[0]['payload']['count'])
        self.assertEqual(usage.KIND_NONE,
                         records[0]['payload']['accelerator_kind'])

    def test_other_event_nothing(self):
        message = samples.as_message(samples.own_sample(),
                                     event_type='instance.power_off.end')
        self.assertEqual([], self._records(message))

    def test_invalid_affinity_dropped(self):
        message = samples.as_message(samples.own_sample(), extra_specs={
            'pci_passthrough:alias': 'a100:1',
            'sovereign_ai:gpu_affinity': 'rack'})
        records = self._records(message)
        self.assertIsNone(records[0]['payload']['gpu_affinity'])
        self.assertIn('invalid affinity level', str(self.problems[0]))

    @ddt.data(
        ('payload', None, 'expected a versioned object'),
        ('flavor', None, 'payload.flavor: expected a versioned object'),
        ('flavor', 'no-data', 'payload.flavor: expected a versioned object'),
        ('extra_specs', ['a100:1'], 'extra_specs: expected an object'),
        ('version', '3.0', 'unsupported version 3.0'),
        ('flavor_version', '2.0', 'unsupported version 2.0 of FlavorPayload'),
        ('uuid', None, 'payload.uuid: missing'),
        ('tenant_id', 42, 'payload.tenant_id: missing or not a string'),
        ('message_id', None, 'message_id: missing'),
        ('timestamp', 'yesterday', "timestamp: invalid time 'yesterday'"),
    )
    @ddt.unpack
    def test_malformed_raises(self, field, value, reason):
        message = samples.as_message(samples.own_sample())
        data = message['payload']['nova_object.data']
        flavor = data['flavor']
        if field == 'payload':
            message['payload'] = value
        elif field == 'flavor':
            data['flavor'] = value
        elif field == 'extra_specs':
            flavor['nova_object.data']['extra_specs'] = value
        elif field == 'version':
            message['payload']['nova_object.version'] = value
        elif field == 'flavor_version':
            flavor['nova_object.version'] = value
        elif field in ('message_id', 'timestamp'):
            message[field] = value
        else:
            data[field] = value

        error = self.assertRaises(usage.InvalidNotification,
                                  self._records, message)
        self.assertIn(reason, str(error))


@ddt.ddt
class TestNovaSamples(base.TestCase):
    """Nova's own sample notifications with a GPU flavor."""

    @ddt.data(*samples.NOVA_SAMPLE_EVENTS)
    def test_sample_gives_record(self, event_type):
        sample = samples.nova_sample(self, event_type)
        message = samples.as_message(sample, extra_specs=A100_SPECS)

        records = make_extractor().records(message, [])

        self.assertEqual(1, len(records))
        payload = records[0]['payload']
        self.assertEqual(events.USAGE_EVENTS[event_type],
                         records[0]['event_type'])
        self.assertEqual('178b0921-8f85-4257-88b6-2e743b5a975c',
                         payload['instance_id'])
        self.assertEqual('6f70656e737461636b20342065766572',
                         payload['project_id'])
        self.assertEqual('A100-SXM4-40GB', payload['model'])
        self.assertEqual(2, payload['count'])
        self.assertEqual(event_type, payload['source_event_type'])

    @ddt.data(*samples.NOVA_SAMPLE_EVENTS)
    def test_sample_without_gpu(self, event_type):
        sample = samples.nova_sample(self, event_type)
        message = samples.as_message(sample)

        records = make_extractor().records(message, [])

        if event_type == 'instance.resize_finish.end':
            self.assertEqual(0, records[0]['payload']['count'])
        else:
            self.assertEqual([], records)

    def test_resize_sample_overrides(self):
        # Keys beside "$ref" override the referenced file.
        sample = samples.nova_sample(self, 'instance.resize_finish.end')
        message = samples.as_message(sample)
        records = make_extractor().records(message, [])
        payload = records[0]['payload']
        self.assertEqual('other_flavor', payload['flavor_name'])
        self.assertEqual('d5a8bb54-365a-45ae-abdb-38d249df7845',
                         payload['flavor_id'])
        self.assertEqual('resized', payload['instance_state'])

    def test_exists_audit_period(self):
        sample = samples.nova_sample(self, 'instance.exists')
        message = samples.as_message(sample, extra_specs=A100_SPECS)
        payload = make_extractor().records(message, [])[0]['payload']
        self.assertEqual('2012-10-01T00:00:00Z',
                         payload['audit_period_beginning'])
        self.assertEqual('2012-10-29T13:42:11Z',
                         payload['audit_period_ending'])
