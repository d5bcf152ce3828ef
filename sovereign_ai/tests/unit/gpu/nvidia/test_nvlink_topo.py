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
from sovereign_ai.gpu.nvidia import nvlink
from sovereign_ai.gpu.nvidia import topo
from sovereign_ai.tests import base


def _read(path):
    with open(path) as handle:
        return handle.read()


class NvlinkTest(base.TestCase):

    def test_all_up(self):
        parsed = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_8x-a100-sxm4-80gb_all-up.txt')))
        self.assertEqual(list(range(8)),
                         [gpu['index'] for gpu in parsed['gpus']])
        self.assertEqual(12, len(parsed['gpus'][5]['links']))
        self.assertEqual({25.0}, set(parsed['gpus'][5]['links'].values()))

    def test_inactive_links(self):
        parsed = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_v100-sxm2-32gb_inactive-links.txt')))
        inactive = {gpu['index']: sorted(
            number for number, speed in gpu['links'].items() if speed is None)
            for gpu in parsed['gpus']}
        self.assertEqual({0: [], 1: [], 2: [], 3: [3, 5], 4: [1],
                          5: [0, 4], 6: [1]}, inactive)
        self.assertEqual(25.781, parsed['gpus'][0]['links'][0])

    def test_tab_indented(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-nvlink-s-i7_a100-sxm4-80gb_all-up.txt')
        parsed = nvlink.parse(_read(path))
        self.assertEqual(7, parsed['gpus'][0]['index'])
        self.assertEqual(12, len(parsed['gpus'][0]['links']))

    def test_all_inactive_message(self):
        parsed = nvlink.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-nvlink-s_all-inactive_constructed.txt')))
        self.assertIs(True, parsed['gpus'][0]['all_inactive'])

    def test_all_inactive_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-nvlink-s-i6_a100-sxm4-80gb_all-inactive.txt')
        parsed = nvlink.parse(_read(path))
        self.assertTrue(parsed['all_inactive'] or any(
            gpu['all_inactive'] for gpu in parsed['gpus']))

    def test_unexpected_line(self):
        error = self.assertRaises(common.ParseError, nvlink.parse,
                                  'Segmentation fault\n')
        self.assertEqual("nvidia-smi nvlink -s: unexpected line "
                         "'Segmentation fault'", str(error))


class TopoTest(base.TestCase):

    def test_constructed_matrix(self):
        parsed = topo.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi-topo-m_2gpu_constructed.txt')))
        self.assertEqual(['GPU0', 'GPU1', 'NIC0'], parsed['devices'])
        self.assertEqual('NV18', parsed['links']['GPU0']['GPU1'])
        self.assertEqual('PHB', parsed['links']['GPU1']['NIC0'])
        self.assertEqual({'cpus': '0-31', 'numa': '0'},
                         parsed['affinity']['GPU1'])

    def test_h200_matrix(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-topo-m_8x-h200_nv18_10nic.txt')
        parsed = topo.parse(_read(path))
        self.assertEqual(18, len(parsed['devices']))
        self.assertEqual('NV18', parsed['links']['GPU0']['GPU7'])
        self.assertEqual('PIX', parsed['links']['GPU0']['NIC3'])
        self.assertEqual('SYS', parsed['links']['GPU4']['NIC0'])
        self.assertEqual({'cpus': '64-127,192-255', 'numa': '1'},
                         parsed['affinity']['GPU7'])

    def test_no_gpu_rows(self):
        error = self.assertRaises(common.ParseError, topo.parse,
                                  'NVIDIA-SMI has failed\n')
        self.assertEqual('nvidia-smi topo -m: no GPU rows found', str(error))
