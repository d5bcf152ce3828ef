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

from sovereign_ai.gpu.nvidia import common
from sovereign_ai.gpu.nvidia import smi_text
from sovereign_ai.gpu.nvidia import smi_xml
from sovereign_ai.tests import base


def _read(path):
    with open(path) as handle:
        return handle.read()


class SmiXmlTest(base.TestCase):

    def test_dtd_v11_throttle_reasons(self):
        parsed = smi_xml.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a10g_515.105.01.xml')))
        gpu = parsed['gpus'][0]
        self.assertEqual('515.105.01', parsed['driver_version'])
        self.assertEqual('00000000:00:1E.0', gpu['bus_id'])
        self.assertEqual('NVIDIA A10G', gpu['product_name'])
        self.assertIs(True, gpu['clocks_event_reasons']['gpu_idle'])
        self.assertIs(False, gpu['clocks_event_reasons']['hw_slowdown'])
        self.assertEqual({'gen_max': 4, 'gen_current': 1, 'width_max': 16,
                          'width_current': 8, 'replays': 0}, gpu['pcie'])
        self.assertEqual({'correctable': 0, 'uncorrectable': 0,
                          'pending': False, 'failure': False},
                         gpu['remapped_rows'])
        self.assertEqual(0, gpu['ecc_volatile_uncorrectable'])
        self.assertIs(False, gpu['persistence_mode'])

    def test_dtd_v12_event_reasons(self):
        parsed = smi_xml.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a100-sxm4-80gb_mig_535.54.03.xml')))
        gpu = parsed['gpus'][0]
        self.assertEqual(4, parsed['attached_gpus'])
        self.assertEqual(1, len(parsed['gpus']))
        self.assertIs(True, gpu['mig_mode'])
        self.assertIs(False, gpu['clocks_event_reasons']['gpu_idle'])
        self.assertIsNone(gpu['remapped_rows']['pending'])
        self.assertEqual('N/A', gpu['fabric']['state'])
        self.assertIs(False, gpu['reset_required'])
        self.assertEqual(67.03, gpu['power_draw'])

    def test_dtd_v13(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q-x_rtx-3080_dtd-v13_595.58.03.xml')
        gpu = smi_xml.parse(_read(path))['gpus'][0]
        self.assertEqual('595.58.03', gpu['driver_version'])
        self.assertIsNone(gpu['ecc_mode'])
        self.assertIsNone(gpu['ecc_volatile_uncorrectable'])
        self.assertIs(False, gpu['clocks_event_reasons']['hw_slowdown'])
        self.assertEqual(16, gpu['pcie']['width_max'])

    def test_dtd_v11_retired_pages(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu', 'nvidia-smi-q-x_tesla-t4_515.105.01.xml')
        gpu = smi_xml.parse(_read(path))['gpus'][0]
        self.assertEqual({'single_bit': 0, 'double_bit': 0,
                          'pending': False}, gpu['retired_pages'])

    def test_older_throttle_schema(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q-x_a100-sxm4-40gb_mig_510.47.03.xml')
        gpu = smi_xml.parse(_read(path))['gpus'][0]
        self.assertEqual('510.47.03', gpu['driver_version'])
        self.assertIs(False, gpu['clocks_event_reasons']['gpu_idle'])
        # The volatile counters are N/A under MIG on this driver.
        self.assertIsNone(gpu['ecc_volatile_uncorrectable'])

    def test_truncated(self):
        text = _read(base.fixture_path(
            'gpu', 'nvidia-smi-q-x_a10g_515.105.01.xml'))
        error = self.assertRaises(common.ParseError, smi_xml.parse,
                                  text[:len(text) // 2])
        self.assertIn('nvidia-smi -q -x: the XML is truncated or malformed',
                      str(error))

    def test_empty(self):
        error = self.assertRaises(common.ParseError, smi_xml.parse, '\n')
        self.assertEqual('nvidia-smi -q -x: the output is empty', str(error))

    def test_wrong_root(self):
        error = self.assertRaises(common.ParseError, smi_xml.parse,
                                  '<html></html>')
        self.assertIn('expected <nvidia_smi_log>', str(error))

    def test_entity_expansion_rejected(self):
        bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">'
                '<!ENTITY b "&a;&a;&a;">]><nvidia_smi_log>&b;'
                '</nvidia_smi_log>')
        self.assertRaises(common.ParseError, smi_xml.parse, bomb)


class SmiTextTest(base.TestCase):

    def test_h100_healthy(self):
        parsed = smi_text.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q_8x-h100-80gb-hbm3_535.161.08.txt')))
        self.assertEqual('535.161.08', parsed['driver_version'])
        self.assertEqual(8, len(parsed['gpus']))
        gpu = parsed['gpus'][1]
        self.assertEqual(1, gpu['index'])
        self.assertEqual('00000000:3B:00.0', gpu['bus_id'])
        self.assertEqual('0000000000002', gpu['serial'])
        self.assertEqual(63, gpu['pcie']['replays'])
        self.assertEqual(5, gpu['pcie']['gen_current'])
        self.assertEqual({'state': 'Completed', 'status': 'Success'},
                         gpu['fabric'])
        self.assertIs(True, gpu['clocks_event_reasons']['hw_slowdown'])
        self.assertIs(True,
                      gpu['clocks_event_reasons']['hw_power_brake_slowdown'])
        self.assertIs(False,
                      gpu['clocks_event_reasons']['hw_thermal_slowdown'])
        self.assertIs(True, gpu['ecc_mode'])
        self.assertEqual(0, gpu['ecc_volatile_uncorrectable'])

    def test_a10_row_remap_pending(self):
        gpu = smi_text.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')))[
                'gpus'][0]
        self.assertEqual({'correctable': 0, 'uncorrectable': 4,
                          'pending': True, 'failure': False},
                         gpu['remapped_rows'])

    def test_a100_throttle_reasons_and_case(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q_8x-a100-sxm4-40gb_460.32.03.txt')
        parsed = smi_text.parse(_read(path))
        gpu = parsed['gpus'][7]
        self.assertEqual('0000000E:00:00.0', gpu['bus_id'])
        # Driver 460 writes "Ecc Mode" and "Clocks Throttle Reasons".
        self.assertIs(True, gpu['ecc_mode'])
        self.assertIs(True, gpu['clocks_event_reasons']['gpu_idle'])
        self.assertIs(False, gpu['persistence_mode'])

    def test_page_retirement_query(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q-d-page-retirement_8gpu_535.86.10.txt')
        parsed = smi_text.parse(_read(path))
        self.assertEqual(8, len(parsed['gpus']))
        self.assertEqual({'single_bit': 0, 'double_bit': 0,
                          'pending': False},
                         parsed['gpus'][3]['retired_pages'])

    def test_truncated(self):
        text = _read(base.fixture_path(
            'gpu', 'nvidia-smi-q_8x-h100-80gb-hbm3_535.161.08.txt'))
        error = self.assertRaises(common.ParseError, smi_text.parse,
                                  text[:len(text) // 3])
        self.assertEqual('nvidia-smi -q: the output lists 3 of 8 attached '
                         'GPUs: it is truncated', str(error))

    def test_not_nvsmi(self):
        error = self.assertRaises(common.ParseError, smi_text.parse,
                                  'No devices were found\n')
        self.assertIn('"NVSMI LOG" header is missing', str(error))

    def test_inforom_warning(self):
        warnings = smi_text.parse_inforom_warnings(_read(base.fixture_path(
            'gpu', 'nvidia-smi_inforom-warning_constructed.txt')))
        self.assertEqual(['00000000:3B:00.0'], warnings)

    def test_inforom_warning_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi_8x-v100-sxm2-32gb_inforom-corrupted_460.32.03.txt')
        self.assertEqual(['00000008:00:00.0'],
                         smi_text.parse_inforom_warnings(_read(path)))
