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

import os
import sys
import time

import fixtures

from sovereign_ai.ironic import args
from sovereign_ai.ironic import sysfs
from sovereign_ai.ironic import tools
from sovereign_ai.tests import base


class ArgsTest(base.TestCase):

    def test_defaults(self):
        values = args.resolve(args.VALIDATE_ARGS, {})
        self.assertEqual('warn', values['persistence_mode'])
        self.assertEqual([48, 63, 64, 74, 79, 92, 94, 95, 119],
                         values['critical_xids'])
        self.assertIsNone(values['expected_gpu_count'])

    def test_node_properties(self):
        node = {'properties': {'sovereign_ai_gpu_count': '8',
                               'sovereign_ai_gpu_model': 'H100'}}
        values = args.resolve(args.VALIDATE_ARGS, {}, node)
        self.assertEqual(8, values['expected_gpu_count'])
        self.assertEqual('H100', values['expected_gpu_model'])

    def test_argument_overrides_property(self):
        node = {'properties': {'sovereign_ai_gpu_count': 8}}
        values = args.resolve(args.VALIDATE_ARGS,
                              {'expected_gpu_count': 4}, node)
        self.assertEqual(4, values['expected_gpu_count'])

    def test_bad_property(self):
        node = {'properties': {'sovereign_ai_gpu_count': 'eight'}}
        error = self.assertRaises(args.InvalidArgument, args.resolve,
                                  args.VALIDATE_ARGS, {}, node)
        self.assertEqual("argument node property sovereign_ai_gpu_count="
                         "'eight' is not an integer", str(error))

    def test_invalid_values(self):
        cases = [
            ({'duration': 0}, 'argument duration=0 is below the minimum 1'),
            ({'duration': 1.5}, 'argument duration=1.5 is not an integer'),
            ({'duration': True}, 'argument duration=True is not an integer'),
            ({'backend': 'stress-ng'}, "argument backend='stress-ng' is not "
             "one of: auto, dcgm, gpu-burn"),
            ({'dcgm_level': 5}, 'argument dcgm_level=5 is above the maximum '
             '4'),
            ({'gpu_burn_memory': '95%; reboot'}, "argument gpu_burn_memory="
             "'95%; reboot' has an invalid format"),
            ({'gpu_burn_doubles': 'yes'}, "argument gpu_burn_doubles='yes' "
             "is not a boolean (true or false)"),
            ({'sample_interval': 'fast'}, "argument sample_interval='fast' "
             "is not a number"),
            ({'critical_xids': [79, 'x']}, "argument critical_xids has a "
             "non-integer item 'x'"),
            ({'fail_slowdown_reasons': ['hot']}, "argument "
             "fail_slowdown_reasons has an invalid item 'hot'; valid items: "
             "gpu_idle, applications_clocks_setting, sw_power_cap, "
             "hw_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, "
             "sync_boost, sw_thermal_slowdown, display_clocks_setting"),
        ]
        for given, message in cases:
            error = self.assertRaises(args.InvalidArgument, args.resolve,
                                      args.BURNIN_ARGS, given)
            self.assertEqual(message, str(error))

    def test_unknown_argument(self):
        error = self.assertRaises(args.InvalidArgument, args.resolve,
                                  args.VALIDATE_ARGS, {'gpus': 8})
        self.assertTrue(str(error).startswith(
            'unknown argument(s): gpus; valid arguments: '))

    def test_string_forms(self):
        values = args.resolve(args.BURNIN_ARGS, {
            'duration': '30', 'gpu_burn_doubles': 'TRUE',
            'critical_xids': '79,48', 'sample_interval': '0.5'})
        self.assertEqual(30, values['duration'])
        self.assertIs(True, values['gpu_burn_doubles'])
        self.assertEqual([79, 48], values['critical_xids'])
        self.assertEqual(0.5, values['sample_interval'])

    def test_argsinfo_lists_every_argument(self):
        info = args.argsinfo(args.BURNIN_ARGS)
        self.assertEqual(sorted(args.BURNIN_ARGS), sorted(info))
        for entry in info.values():
            self.assertIs(False, entry['required'])
            self.assertTrue(entry['description'])


class ToolsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def _script(self, name, body):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as handle:
            handle.write('#!%s\n%s\n' % (sys.executable, body))
        os.chmod(path, 0o755)
        return path

    def test_output_and_status(self):
        path = self._script(
            'tool', 'import sys\nprint(" ".join(sys.argv[1:]))\n'
            'sys.stderr.write("warn\\n")\nsys.exit(14)')
        stdout, stderr, status = tools.run([path, 'a;b', '$(x)'], 10)
        self.assertEqual('a;b $(x)\n', stdout)
        self.assertEqual('warn\n', stderr)
        self.assertEqual(14, status)

    def test_timeout_kills_process_group(self):
        marker = os.path.join(self.tmp, 'child-alive')
        path = self._script(
            'hang', 'import os, time\n'
            'if os.fork() == 0:\n'
            '    time.sleep(3)\n'
            '    open(%r, "w").close()\n'
            '    os._exit(0)\n'
            'time.sleep(60)' % marker)
        started = time.monotonic()
        error = self.assertRaises(tools.ToolTimeout, tools.run, [path], 1)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual('hang timed out after 1 seconds and was killed',
                         str(error))
        time.sleep(2.5)
        self.assertFalse(os.path.exists(marker))

    def test_missing(self):
        error = self.assertRaises(tools.ToolMissing, tools.run,
                                  [os.path.join(self.tmp, 'nvidia-smi')], 5)
        self.assertIn('nvidia-smi was not found', str(error))


class SysfsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def _device(self, address, vendor, pci_class):
        path = os.path.join(self.root, 'bus', 'pci', 'devices', address)
        os.makedirs(path)
        for name, value in (('vendor', vendor), ('class', pci_class)):
            with open(os.path.join(path, name), 'w') as handle:
                handle.write(value + '\n')

    def test_gpus_and_switches(self):
        self._device('0000:19:00.0', '0x10de', '0x030200')
        self._device('0000:3b:00.0', '0x10de', '0x030000')
        self._device('0000:05:00.0', '0x10de', '0x068000')
        self._device('0000:18:00.0', '0x15b3', '0x020700')
        self._device('0000:00:14.0', '0x10de', '0x040300')
        self.assertEqual(['0000:19:00.0', '0000:3b:00.0'],
                         sysfs.list_gpus(self.root))
        self.assertEqual(['0000:05:00.0'], sysfs.list_nvswitches(self.root))

    def test_no_devices(self):
        self.assertEqual([], sysfs.list_gpus(self.root))

    def test_fabric_manager(self):
        os.makedirs(os.path.join(self.root, '412'))
        with open(os.path.join(self.root, '412', 'comm'), 'w') as handle:
            handle.write('nv-fabricmanager\n')
        self.assertIs(True, sysfs.fabric_manager_running(self.root))
        self.assertIs(False, sysfs.fabric_manager_running(
            os.path.join(self.root, 'missing')))
