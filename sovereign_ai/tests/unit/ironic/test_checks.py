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

import copy

from sovereign_ai.gpu.nvidia import nvlink
from sovereign_ai.gpu.nvidia import smi_text
from sovereign_ai.gpu.nvidia import smi_xml
from sovereign_ai.gpu.nvidia import xid
from sovereign_ai.ironic import args
from sovereign_ai.ironic import checks
from sovereign_ai.tests import base

H100 = 'nvidia-smi-q_8x-h100-80gb-hbm3_535.161.08.txt'


def _read(path):
    with open(path) as handle:
        return handle.read()


def _faults(findings):
    return [(entry['gpu'], entry['check'], entry['message'])
            for entry in findings if entry['severity'] == checks.FAULT]


def _warnings(findings):
    return [(entry['gpu'], entry['check'])
            for entry in findings if entry['severity'] == checks.WARNING]


class ValidateTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.settings = args.resolve(args.VALIDATE_ARGS, {})
        self.h100 = smi_text.parse(_read(base.fixture_path('gpu', H100)))

    def _inventory(self, query=None, **extra):
        inventory = {'query': query or self.h100, 'nvswitch_count': 4,
                     'fabric_manager_running': True, 'sysfs_gpu_count': 8,
                     'xids': [], 'nvlink': None, 'inforom_warnings': [],
                     'smi_exit_status': 0}
        inventory.update(extra)
        return inventory

    def test_h100_healthy_passes(self):
        findings = checks.validate(self._inventory(), self.settings)
        self.assertEqual([], _faults(findings))
        # The capture shows the power-brake slowdown with no load applied.
        self.assertIn((0, 'clocks_event_reasons'), _warnings(findings))

    def test_h100_expected_values_pass(self):
        settings = args.resolve(args.VALIDATE_ARGS, {
            'expected_gpu_count': 8, 'expected_gpu_model': 'H100 80GB HBM3',
            'allowed_driver_versions': ['535.161.08'],
            'min_driver_version': '535.104', 'persistence_mode': 'require'})
        findings = checks.validate(self._inventory(), settings)
        self.assertEqual([], _faults(findings))

    def test_a100_healthy_passes(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q_8x-a100-sxm4-40gb_460.32.03.txt')
        query = smi_text.parse(_read(path))
        findings = checks.validate(
            self._inventory(query, nvswitch_count=0), self.settings)
        self.assertEqual([], _faults(findings))
        # Persistence mode is disabled on this capture: a warning by default.
        self.assertEqual([(index, 'persistence_mode') for index in range(8)],
                         _warnings(findings))

    def test_persistence_required(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][2]['persistence_mode'] = False
        settings = args.resolve(args.VALIDATE_ARGS,
                                {'persistence_mode': 'require'})
        self.assertEqual(
            [(2, 'persistence_mode',
              'persistence mode is disabled (policy: require)')],
            _faults(checks.validate(self._inventory(query), settings)))

    def test_row_remap_pending(self):
        query = smi_text.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')))
        findings = checks.validate(
            self._inventory(query, nvswitch_count=0, sysfs_gpu_count=1),
            self.settings)
        self.assertEqual([
            (0, 'row_remapping', 'a row remapping is pending, so the GPU '
             'needs a reset (threshold: none pending)'),
            (0, 'row_remapping', '4 rows remapped after uncorrectable errors '
             '(threshold: 0)')], _faults(findings))

    def test_row_remap_threshold_raised(self):
        query = smi_text.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')))
        settings = args.resolve(args.VALIDATE_ARGS,
                                {'max_uncorrectable_remapped_rows': 8})
        faults = _faults(checks.validate(
            self._inventory(query, nvswitch_count=0, sysfs_gpu_count=1),
            settings))
        self.assertEqual(['a row remapping is pending, so the GPU needs a '
                          'reset (threshold: none pending)'],
                         [message for _gpu, _check, message in faults])

    def test_pending_repair_allowed(self):
        query = smi_text.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')))
        settings = args.resolve(args.VALIDATE_ARGS, {
            'fail_on_pending_repair': False,
            'max_uncorrectable_remapped_rows': 4})
        self.assertEqual([], _faults(checks.validate(
            self._inventory(query, nvswitch_count=0, sysfs_gpu_count=1),
            settings)))

    def test_fabric_and_inforom_checks_off(self):
        query = smi_xml.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a100-sxm4-80gb_mig_535.54.03.xml')))
        inventory = self._inventory(
            query, nvswitch_count=6, fabric_manager_running=False,
            sysfs_gpu_count=1, inforom_warnings=['00000000:01:00.0'],
            smi_exit_status=14)
        self.assertEqual(['fabric', 'inforom'], sorted(
            check for _gpu, check, _message in _faults(
                checks.validate(inventory, self.settings))))
        settings = args.resolve(args.VALIDATE_ARGS, {
            'check_fabric': False, 'check_inforom': False})
        self.assertEqual([], _faults(checks.validate(inventory, settings)))

    def test_remap_failure_and_retired_pages(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][4]['remapped_rows']['failure'] = True
        query['gpus'][5]['retired_pages'] = {
            'single_bit': 2, 'double_bit': 1, 'pending': True}
        faults = _faults(checks.validate(self._inventory(query),
                                         self.settings))
        self.assertIn((4, 'row_remapping', 'row remapping failed: no spare '
                       'rows are left (threshold: no failure)'), faults)
        self.assertIn((5, 'retired_pages', 'a page retirement is pending, so '
                       'the GPU needs a reset (threshold: none pending)'),
                      faults)
        self.assertIn((5, 'retired_pages', '3 retired pages (threshold: 0)'),
                      faults)

    def test_volatile_ecc_and_ecc_disabled(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][1]['ecc_volatile_uncorrectable'] = 2
        query['gpus'][3]['ecc_mode'] = False
        self.assertEqual([
            (1, 'ecc_errors', '2 volatile uncorrectable ECC errors '
             '(threshold: 0)'),
            (3, 'ecc_mode', 'ECC mode is disabled (threshold: enabled)')],
            _faults(checks.validate(self._inventory(query), self.settings)))

    def test_count_model_and_driver(self):
        settings = args.resolve(args.VALIDATE_ARGS, {
            'expected_gpu_count': 16, 'expected_gpu_model': 'H200',
            'allowed_driver_versions': '550.90.07,550.127.05',
            'min_driver_version': '550.90'})
        faults = _faults(checks.validate(self._inventory(), settings))
        self.assertIn((None, 'gpu_count',
                       'nvidia-smi lists 8 GPUs, expected 16'), faults)
        self.assertIn((7, 'gpu_model', 'model is "NVIDIA H100 80GB HBM3", '
                       'expected "H200"'), faults)
        self.assertIn((None, 'driver_version', 'driver 535.161.08 is not in '
                       'the allowed list (550.90.07, 550.127.05)'), faults)
        self.assertIn((None, 'driver_version', 'driver 535.161.08 is older '
                       'than the minimum 550.90'), faults)

    def test_gpu_missing_from_driver(self):
        faults = _faults(checks.validate(
            self._inventory(sysfs_gpu_count=9), self.settings))
        self.assertEqual([(None, 'gpu_count', 'the PCI bus has 9 NVIDIA GPUs '
                           'but nvidia-smi lists 8, so the driver did not '
                           'initialise 1')], faults)

    def test_fabric_not_ready(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][6]['fabric'] = {'state': 'In Progress',
                                      'status': 'N/A'}
        self.assertEqual(
            [(6, 'fabric', 'NVSwitch fabric state is In Progress, status '
              'N/A (threshold: Completed, Success)')],
            _faults(checks.validate(self._inventory(query), self.settings)))

    def test_fabric_manager_not_running(self):
        query = smi_xml.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a100-sxm4-80gb_mig_535.54.03.xml')))
        faults = _faults(checks.validate(self._inventory(
            query, nvswitch_count=6, fabric_manager_running=False,
            sysfs_gpu_count=1), self.settings))
        self.assertEqual([(None, 'fabric', 'the node has 6 NVSwitches but '
                           'no nvidia-fabricmanager process runs')], faults)

    def test_inforom_warning(self):
        faults = _faults(checks.validate(self._inventory(
            inforom_warnings=['00000000:3B:00.0'], smi_exit_status=14),
            self.settings))
        self.assertEqual([(1, 'inforom', 'the infoROM is corrupted '
                           '(threshold: no infoROM warning)')], faults)

    def test_inactive_nvlinks(self):
        links = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_v100-sxm2-32gb_inactive-links.txt')))
        faults = _faults(checks.validate(self._inventory(nvlink=links),
                                         self.settings))
        self.assertEqual([
            (3, 'nvlink', '2 NVLink links inactive (links 3, 5; threshold: '
             '0)'),
            (4, 'nvlink', '1 NVLink links inactive (links 1; threshold: 0)'),
            (5, 'nvlink', '2 NVLink links inactive (links 0, 4; threshold: '
             '0)'),
            (6, 'nvlink', '1 NVLink links inactive (links 1; threshold: 0)')],
            faults)

    def test_all_links_inactive(self):
        links = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_all-inactive_constructed.txt')))
        faults = _faults(checks.validate(self._inventory(nvlink=links),
                                         self.settings))
        self.assertEqual([(0, 'nvlink', 'all NVLink links are inactive '
                           '(threshold: 0 inactive)')], faults)

    def test_nvlinks_healthy(self):
        links = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_8x-a100-sxm4-80gb_all-up.txt')))
        self.assertEqual([], _faults(checks.validate(
            self._inventory(nvlink=links), self.settings)))

    def test_xid_since_boot(self):
        events = xid.parse(_read(base.fixture_path(
            'gpu', 'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')))
        faults = _faults(checks.validate(self._inventory(xids=events),
                                         self.settings))
        self.assertEqual(1, len(faults))
        self.assertEqual((4, 'xid'), faults[0][:2])
        self.assertTrue(faults[0][2].startswith(
            'Xid 119 logged 5 time(s) since boot: pid=2024380'))
        self.assertTrue(faults[0][2].endswith(
            '(critical Xids: 48, 63, 64, 74, 79, 92, 94, 95, 119)'))

    def test_xid_not_in_list(self):
        events = xid.parse(_read(base.fixture_path(
            'gpu', 'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')))
        settings = args.resolve(args.VALIDATE_ARGS, {'critical_xids': [79]})
        self.assertEqual([], _faults(checks.validate(
            self._inventory(xids=events), settings)))

    def test_pcie_downshift_idle_accepted(self):
        query = smi_xml.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a10g_515.105.01.xml')))
        findings = checks.validate(self._inventory(
            query, nvswitch_count=0, sysfs_gpu_count=1), self.settings)
        self.assertEqual([], _faults(findings))
        self.assertIn((0, 'pcie_link'), _warnings(findings))

    def test_pcie_downshift_busy_fails(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][0]['pcie']['gen_current'] = 3
        query['gpus'][0]['pcie']['width_current'] = 8
        self.assertEqual(
            [(0, 'pcie_link', 'PCIe link runs at Gen3 of Gen5 and x8 of x16 '
              'while not idle (threshold: the maximum)')],
            _faults(checks.validate(self._inventory(query), self.settings)))

    def test_pcie_replays_warn_only(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][2]['pcie']['replays'] = 5000
        findings = checks.validate(self._inventory(query), self.settings)
        self.assertEqual([], _faults(findings))
        self.assertIn((2, 'pcie_replays'), _warnings(findings))

    def test_thermal_slowdown_fails(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][7]['clocks_event_reasons']['hw_thermal_slowdown'] = True
        self.assertEqual(
            [(7, 'clocks_event_reasons', 'clocks event reason '
              'hw_thermal_slowdown is active (failing reasons: '
              'hw_thermal_slowdown, sw_thermal_slowdown)')],
            _faults(checks.validate(self._inventory(query), self.settings)))

    def test_reset_required(self):
        query = copy.deepcopy(self.h100)
        query['gpus'][0]['reset_required'] = True
        self.assertEqual(
            [(0, 'reset_required',
              'nvidia-smi reports that the GPU needs a reset')],
            _faults(checks.validate(self._inventory(query), self.settings)))
