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

import json

import testtools

from sovereign_ai.tests.loopback import layout


class TestParse(testtools.TestCase):

    def test_defaults(self):
        result = layout.parse('')
        self.assertEqual(8, result.gpus)
        self.assertEqual(2, result.numa)
        self.assertEqual(4, result.switches)
        self.assertEqual(1, result.nvlink)
        self.assertEqual(0x18, result.bus)
        self.assertEqual('2330', result.product)

    def test_round_trip(self):
        text = 'gpus=4,numa=1,switches=2,nvlink=2,bus=0x40,product=20b5'
        self.assertEqual(text, layout.parse(text).format())

    def test_unknown_key(self):
        exc = self.assertRaises(ValueError, layout.parse, 'gpu=8')
        self.assertIn("'gpu=8'", str(exc))

    def test_uneven_domains(self):
        exc = self.assertRaises(ValueError, layout.parse, 'gpus=8,nvlink=3')
        self.assertIn('nvlink=3', str(exc))

    def test_switch_spans_numa(self):
        exc = self.assertRaises(
            ValueError, layout.parse, 'gpus=8,numa=2,switches=1')
        self.assertIn('span NUMA nodes', str(exc))

    def test_bus_overflow(self):
        self.assertRaises(ValueError, layout.parse, 'gpus=8,bus=0xfc')

    def test_bad_product(self):
        self.assertRaises(ValueError, layout.parse, 'product=fake-product')

    def test_not_integer(self):
        exc = self.assertRaises(ValueError, layout.parse, 'gpus=eight')
        self.assertIn("gpus='eight'", str(exc))

    def test_hosts(self):
        hosts = layout.parse_hosts('a:gpus=2,numa=1,switches=1;b:gpus=4')
        self.assertEqual(['a', 'b'], sorted(hosts))
        self.assertEqual(2, hosts['a'].gpus)
        self.assertEqual(4, hosts['b'].gpus)

    def test_host_without_name(self):
        self.assertRaises(ValueError, layout.parse_hosts, 'gpus=8')


class TestDevices(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.layout = layout.parse('gpus=8,numa=2,switches=4,nvlink=2')

    def test_addresses_unique(self):
        addresses = [gpu.address for gpu in self.layout.devices()]
        self.assertEqual(8, len(set(addresses)))
        self.assertEqual('0000:18:00.0', addresses[0])
        self.assertEqual('0000:1f:00.0', addresses[-1])

    def test_domains(self):
        gpus = self.layout.devices()
        self.assertEqual([0] * 4 + [1] * 4, [g.numa_node for g in gpus])
        self.assertEqual(['sw0', 'sw0', 'sw1', 'sw1', 'sw2', 'sw2', 'sw3',
                          'sw3'], [g.pcie_switch for g in gpus])
        self.assertEqual(['nvl0'] * 4 + ['nvl1'] * 4,
                         [g.nvlink_domain for g in gpus])

    def test_domain_of(self):
        self.assertEqual('sw1', self.layout.domain_of('0000:1a:00.0',
                                                      'pcie_switch'))
        self.assertEqual(1, self.layout.domain_of('0000:1c:00.0', 'numa'))
        self.assertEqual('host', self.layout.domain_of('0000:1c:00.0',
                                                       'none'))
        self.assertRaises(KeyError, self.layout.domain_of, '0000:01:00.0',
                          'numa')

    def test_domain_size(self):
        self.assertEqual(8, self.layout.domain_size('none'))
        self.assertEqual(4, self.layout.domain_size('numa'))
        self.assertEqual(2, self.layout.domain_size('pcie_switch'))
        self.assertEqual(4, self.layout.domain_size('nvlink'))

    def test_reported_devices(self):
        devices = self.layout.pci_passthrough_devices()
        self.assertEqual(8, len(devices))
        for device in devices:
            # Nova stores vendor and product ids in 4-character columns.
            self.assertEqual('10de', device['vendor_id'])
            self.assertEqual('2330', device['product_id'])
            self.assertEqual('type-PCI', device['dev_type'])

    def test_device_specs(self):
        specs = [json.loads(spec) for spec in self.layout.device_specs()]
        self.assertEqual(8, len(specs))
        self.assertEqual({
            'address': '0000:18:00.0', 'vendor_id': '10de',
            'product_id': '2330', 'pcie_switch': 'sw0',
            'nvlink_domain': 'nvl0'}, specs[0])
