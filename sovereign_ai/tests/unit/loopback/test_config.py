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

from sovereign_ai.tests.loopback import config


class TestRender(testtools.TestCase):

    def _settings(self, plugins):
        return config.Settings('/tmp/state', '/tmp/venv', plugins=plugins)

    def test_plugins_off(self):
        text = config.render_nova(self._settings(None))
        self.assertNotIn('GpuTopologyFilter', text)
        self.assertNotIn('GpuFragmentationWeigher', text)
        self.assertIn('pci_in_placement = true', text)

    def test_plugins_on(self):
        settings = self._settings(config.Plugins(True, True, True, True))
        nova = config.render_nova(settings)
        self.assertIn(',GpuTopologyFilter', nova)
        self.assertIn('sovereign_ai.nova.weighers.GpuFragmentationWeigher',
                      nova)
        self.assertNotIn('accelerator_usage', nova)
        conductor = config.render_conductor(settings)
        self.assertIn('driver = accelerator_usage', conductor)

    def test_compute_device_specs(self):
        text = config.render_compute(self._settings(None), 'gpu-host-2')
        specs = [json.loads(line.split(' = ', 1)[1])
                 for line in text.splitlines()
                 if line.startswith('device_spec = ')]
        self.assertEqual(8, len(specs))
        self.assertEqual('0000:58:00.0', specs[0]['address'])
        self.assertIn('host = gpu-host-2', text)
        self.assertIn('report_in_placement = true', text)

    def test_alias(self):
        alias = self._settings(None).gpu_alias()
        self.assertEqual({'name': 'gpu', 'vendor_id': '10de',
                          'product_id': '2330', 'device_type': 'type-PCI'},
                         alias)

    def test_alias_mixed_products(self):
        settings = config.Settings(
            '/tmp/s', '/tmp/v', hosts_text='a:product=2330;b:product=20b5')
        self.assertRaises(ValueError, settings.gpu_alias)


class TestSelectPlugins(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # cloud imports only the standard library and this package at
        # module level, so the test needs no Nova.
        from sovereign_ai.tests.loopback import cloud
        self.cloud = cloud
        self.found = config.Plugins(True, True, True, False)

    def test_auto(self):
        self.assertEqual(self.found,
                         self.cloud.select_plugins(self.found, 'auto'))

    def test_none(self):
        result = self.cloud.select_plugins(self.found, 'none')
        self.assertFalse(any(result))

    def test_subset(self):
        result = self.cloud.select_plugins(
            self.found, 'gpu_topology_filter, accelerator_usage_notifier')
        self.assertTrue(result.gpu_topology_filter)
        self.assertFalse(result.gpu_fragmentation_weigher)
        # Not found in the tree, so not enabled even when requested.
        self.assertFalse(result.accelerator_usage_notifier)

    def test_unknown(self):
        exc = self.assertRaises(ValueError, self.cloud.select_plugins,
                                self.found, 'gpu_filter')
        self.assertIn('gpu_filter', str(exc))
