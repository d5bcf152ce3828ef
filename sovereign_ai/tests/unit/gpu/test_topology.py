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

from sovereign_ai.gpu import topology
from sovereign_ai.tests import base


class TestParseAffinity(base.TestCase):

    def test_defaults(self):
        request = topology.parse_affinity({})

        self.assertEqual('none', request.level)
        self.assertEqual('required', request.policy)
        self.assertFalse(request.is_required)

    def test_every_level_and_policy(self):
        for level in topology.AFFINITY_LEVELS:
            for policy in topology.AFFINITY_POLICIES:
                request = topology.parse_affinity({
                    'sovereign_ai:gpu_affinity': level,
                    'sovereign_ai:gpu_affinity_policy': policy,
                    'pci_passthrough:alias': 'a100:2',
                })
                self.assertEqual((level, policy), tuple(request))

    def test_is_required(self):
        required = topology.parse_affinity(
            {'sovereign_ai:gpu_affinity': 'nvlink'})
        preferred = topology.parse_affinity({
            'sovereign_ai:gpu_affinity': 'nvlink',
            'sovereign_ai:gpu_affinity_policy': 'preferred'})

        self.assertTrue(required.is_required)
        self.assertFalse(preferred.is_required)

    def test_invalid_level(self):
        error = self.assertRaises(
            ValueError, topology.parse_affinity,
            {'sovereign_ai:gpu_affinity': 'socket'})

        self.assertIn("'socket'", str(error))
        self.assertIn('sovereign_ai:gpu_affinity', str(error))
        self.assertIn('none, numa, pcie_switch, nvlink', str(error))

    def test_invalid_policy(self):
        error = self.assertRaises(
            ValueError, topology.parse_affinity,
            {'sovereign_ai:gpu_affinity_policy': 'Required'})

        self.assertIn("'Required'", str(error))
        self.assertIn('sovereign_ai:gpu_affinity_policy', str(error))
        self.assertIn('required, preferred', str(error))

    def test_case_and_spaces_invalid(self):
        for value in ('NUMA', ' numa', ''):
            self.assertRaises(
                ValueError, topology.parse_affinity,
                {'sovereign_ai:gpu_affinity': value})


class TestDomainOf(base.TestCase):

    # A pool as PciDeviceStats builds it for one GPU in placement mode.
    POOL = {
        'vendor_id': '10de', 'product_id': '2330', 'dev_type': 'type-PCI',
        'numa_node': 1, 'address': '0000:9a:00.0',
        'pcie_switch': 'sw3', 'nvlink_domain': 'nvs0',
        'rp_uuid': 'c2a8fb2b-8b1f-4fa1-9c1e-1b0f5d9a2d4e',
        'count': 1,
    }

    def test_none_is_host(self):
        self.assertEqual(topology.HOST_DOMAIN,
                         topology.domain_of(self.POOL, 'none'))
        self.assertEqual(topology.HOST_DOMAIN,
                         topology.domain_of({}, 'none'))

    def test_each_level(self):
        self.assertEqual(1, topology.domain_of(self.POOL, 'numa'))
        self.assertEqual('sw3', topology.domain_of(self.POOL, 'pcie_switch'))
        self.assertEqual('nvs0', topology.domain_of(self.POOL, 'nvlink'))

    def test_missing_information(self):
        self.assertIsNone(topology.domain_of({}, 'numa'))
        self.assertIsNone(topology.domain_of({'numa_node': None}, 'numa'))
        self.assertIsNone(topology.domain_of({}, 'pcie_switch'))
        self.assertIsNone(topology.domain_of({}, 'nvlink'))

    def test_numa_node_forms(self):
        self.assertEqual(0, topology.domain_of({'numa_node': 0}, 'numa'))
        self.assertEqual(3, topology.domain_of({'numa_node': '3'}, 'numa'))
        self.assertIsNone(topology.domain_of({'numa_node': -1}, 'numa'))
        self.assertIsNone(topology.domain_of({'numa_node': True}, 'numa'))
        self.assertIsNone(topology.domain_of({'numa_node': 'one'}, 'numa'))

    def test_tag_forms(self):
        self.assertEqual(
            'sw0', topology.domain_of({'pcie_switch': ' sw0 '}, 'pcie_switch'))
        self.assertEqual(
            'sw0', topology.domain_of({'pcie_switch': 'SW0'}, 'pcie_switch'))
        self.assertEqual(
            '2', topology.domain_of({'nvlink_domain': 2}, 'nvlink'))
        self.assertIsNone(
            topology.domain_of({'nvlink_domain': ''}, 'nvlink'))
        self.assertIsNone(
            topology.domain_of({'nvlink_domain': '  '}, 'nvlink'))
        self.assertIsNone(
            topology.domain_of({'nvlink_domain': ['a', 'b']}, 'nvlink'))
        self.assertIsNone(
            topology.domain_of({'pcie_switch': False}, 'pcie_switch'))

    def test_tag_named_by_level(self):
        # The nvlink level reads the nvlink_domain tag, not a tag 'nvlink'.
        self.assertIsNone(
            topology.domain_of({'nvlink': 'nvs0'}, 'nvlink'))

    def test_invalid_level(self):
        error = self.assertRaises(
            ValueError, topology.domain_of, self.POOL, 'rack')

        self.assertIn("'rack'", str(error))

    def test_attribute_of(self):
        self.assertIsNone(topology.attribute_of('none'))
        self.assertEqual('numa_node', topology.attribute_of('numa'))
        self.assertEqual('pcie_switch', topology.attribute_of('pcie_switch'))
        self.assertEqual('nvlink_domain', topology.attribute_of('nvlink'))
