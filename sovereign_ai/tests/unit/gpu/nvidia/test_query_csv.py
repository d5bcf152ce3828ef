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
from sovereign_ai.gpu.nvidia import query_csv
from sovereign_ai.tests import base


def _read(path):
    with open(path) as handle:
        return handle.read()


class QueryCsvTest(base.TestCase):

    def test_h100_rows(self):
        rows = query_csv.parse(_read(base.fixture_path(
            'gpu', 'nvidia-smi_query-gpu_h100-80gb-hbm3_rows0-3_535.161.07.csv'
        )))
        self.assertEqual(4, len(rows))
        self.assertEqual('00000000:0A:00.0', rows[0]['pci.bus_id'])
        self.assertEqual('535.161.07', rows[0]['driver_version'])
        self.assertEqual(70.89, rows[0]['power.draw.average'])
        self.assertEqual(5, rows[3]['pcie.link.gen.gpucurrent'])
        self.assertEqual(0, rows[2]['ecc.errors.uncorrected.volatile.total'])

    def test_idle_link_downshift(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi_query-gpu_4x-tesla-t4_510.108.03.csv')
        rows = query_csv.parse(_read(path))
        self.assertEqual([1, 1, 1, 1],
                         [row['pcie.link.gen.current'] for row in rows])
        self.assertEqual([3, 3, 3, 3],
                         [row['pcie.link.gen.max'] for row in rows])

    def test_not_available_value(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi_query-gpu_tesla-p100-pcie-16gb.csv')
        row = query_csv.parse(_read(path))[0]
        self.assertIsNone(row['fan.speed'])
        self.assertEqual(28.16, row['power.draw'])

    def test_throttle_names_become_event_names(self):
        rows = query_csv.parse(
            'index, clocks_throttle_reasons.hw_slowdown, '
            'clocks_event_reasons.sw_thermal_slowdown, power.draw [W]\n'
            '0, Active, Not Active, 312.40 W\n')
        self.assertEqual({'index': 0,
                          'clocks_event_reasons.hw_slowdown': True,
                          'clocks_event_reasons.sw_thermal_slowdown': False,
                          'power.draw': 312.4}, rows[0])

    def test_truncated_row(self):
        error = self.assertRaises(
            common.ParseError, query_csv.parse,
            'index, pci.bus_id, temperature.gpu\n0, 00000000:19:00.0, 41\n'
            '1, 00000000:3B:00.0\n')
        self.assertEqual('nvidia-smi --query-gpu: line 3 has 2 values, the '
                         'header has 3: the output is truncated or '
                         'malformed', str(error))

    def test_header_only(self):
        error = self.assertRaises(common.ParseError, query_csv.parse,
                                  'index, pci.bus_id\n')
        self.assertIn('has a header but no rows', str(error))

    def test_empty(self):
        self.assertRaises(common.ParseError, query_csv.parse, '')
