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
from sovereign_ai.gpu.nvidia import dcgm
from sovereign_ai.gpu.nvidia import gpu_burn
from sovereign_ai.gpu.nvidia import nvlink
from sovereign_ai.gpu.nvidia import query_csv
from sovereign_ai.gpu.nvidia import smi_text
from sovereign_ai.gpu.nvidia import smi_xml
from sovereign_ai.gpu.nvidia import topo
from sovereign_ai.gpu.nvidia import xid
from sovereign_ai.tests import base


def _read(path):
    with open(path) as handle:
        return handle.read()


class DcgmTest(base.TestCase):

    def test_3x_level3_pass(self):
        parsed = dcgm.parse(_read(base.fixture_path(
            'gpu', 'dcgmi-diag-r3-j_tesla-t4_dcgm3x.json')))
        self.assertEqual('3.x', parsed['layout'])
        self.assertEqual(16, len(parsed['results']))
        self.assertEqual({'pass', 'skip'},
                         {result['status'] for result in parsed['results']})
        diagnostic = [result for result in parsed['results']
                      if result['test'] == 'Diagnostic'][0]
        self.assertEqual(0, diagnostic['gpu'])
        self.assertIn('11103.02 gigaflops', diagnostic['info'])

    def test_3x_levels_1_and_2(self):
        for level, count in (('r1', 9), ('r2', 11)):
            path = base.skip_unless_shared(
                self, 'fixtures', 'gpu',
                'dcgmi-diag-%s-j_tesla-t4_dcgm3x.json' % level)
            parsed = dcgm.parse(_read(path))
            self.assertEqual(count, len(parsed['results']))

    def test_4x_failure(self):
        parsed = dcgm.parse(_read(base.fixture_path(
            'gpu', 'dcgmi-diag-r2-j_dcgm4x_fail_constructed.json')))
        self.assertEqual('4.x', parsed['layout'])
        self.assertEqual('4.1.1', parsed['version'])
        failed = [result for result in parsed['results']
                  if result['status'] == 'fail']
        self.assertEqual(1, len(failed))
        self.assertEqual(1, failed[0]['gpu'])
        self.assertEqual(['GPU 1 had a double-bit ECC error'],
                         failed[0]['warnings'])
        self.assertEqual('0000000000002', parsed['serials'][1])

    def test_truncated(self):
        text = _read(base.fixture_path(
            'gpu', 'dcgmi-diag-r3-j_tesla-t4_dcgm3x.json'))
        error = self.assertRaises(common.ParseError, dcgm.parse,
                                  text[:500])
        self.assertIn('dcgmi diag: the JSON is truncated or malformed',
                      str(error))

    def test_unknown_root(self):
        error = self.assertRaises(common.ParseError, dcgm.parse, '{"a": 1}')
        self.assertIn('neither "DCGM Diagnostic" nor "DCGM GPU Diagnostic"',
                      str(error))


class GpuBurnTest(base.TestCase):

    def test_pass(self):
        parsed = gpu_burn.parse(_read(base.fixture_path(
            'gpu', 'gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')))
        self.assertEqual(8, parsed['tested'])
        self.assertEqual([], parsed['fatal'])
        self.assertEqual({'OK'}, {gpu['verdict']
                                  for gpu in parsed['gpus'].values()})
        self.assertEqual(6783, parsed['gpus'][0]['processed'])
        self.assertEqual(17093.0, parsed['gpus'][1]['gflops'])
        self.assertEqual(0, parsed['gpus'][7]['errors'])

    def test_faulty_with_exit_zero(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'gpu-burn_16gpu_forced-miscompare_faulty_exit0.txt')
        parsed = gpu_burn.parse(_read(path))
        self.assertEqual(16, parsed['tested'])
        self.assertEqual({'FAULTY'}, {gpu['verdict']
                                      for gpu in parsed['gpus'].values()})
        self.assertEqual(-524288000, parsed['gpus'][1]['errors'])
        self.assertEqual(0, parsed['gpus'][0]['errors'])

    def test_faulty_constructed(self):
        parsed = gpu_burn.parse(_read(base.fixture_path(
            'gpu', 'gpu-burn_2gpu_faulty_constructed.txt')))
        self.assertEqual('FAULTY', parsed['gpus'][1]['verdict'])
        self.assertEqual(12, parsed['gpus'][1]['errors'])

    def test_init_failure_reported_ok(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'gpu-burn_6gpu_init-failure_but-reports-ok.txt')
        parsed = gpu_burn.parse(_read(path))
        self.assertEqual(["Couldn't init a GPU test"], parsed['fatal'])
        self.assertEqual({0}, {gpu['processed']
                               for gpu in parsed['gpus'].values()})
        self.assertEqual({'OK'}, {gpu['verdict']
                                  for gpu in parsed['gpus'].values()})

    def test_no_cuda_devices(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu', 'gpu-burn_8gpu_no-cuda-devices.txt')
        parsed = gpu_burn.parse(_read(path))
        self.assertIn('No CUDA devices', parsed['fatal'])
        self.assertIsNone(parsed['tested'])

    def test_clients_died(self):
        parsed = gpu_burn.parse(_read(base.fixture_path(
            'gpu', 'gpu-burn_2gpu_died_constructed.txt')))
        self.assertEqual(['No clients are alive'], parsed['fatal'])
        self.assertIs(True, parsed['gpus'][0]['died'])
        self.assertIs(False, parsed['gpus'][1]['died'])

    def test_clients_died_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'gpu-burn_8gpu_all-clients-died_aborting.txt')
        parsed = gpu_burn.parse(_read(path))
        self.assertIn('No clients are alive', parsed['fatal'])
        self.assertTrue(any(gpu['died'] for gpu in parsed['gpus'].values()))

    def test_empty(self):
        error = self.assertRaises(common.ParseError, gpu_burn.parse, '')
        self.assertEqual('gpu_burn: the output is empty', str(error))


class XidTest(base.TestCase):

    def test_xid_119(self):
        events = xid.parse(_read(base.fixture_path(
            'gpu', 'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')))
        self.assertEqual(5, len(events))
        self.assertEqual({'00000000:9B:00.0'},
                         {event['bus_id'] for event in events})
        self.assertEqual({119}, {event['xid'] for event in events})
        self.assertTrue(events[0]['message'].startswith('pid=2024380'))

    def test_no_events(self):
        self.assertEqual([], xid.parse('[    0.000000] Linux version 6.1\n'))
        self.assertEqual([], xid.parse(''))


class EmptyOutputTest(base.TestCase):

    def test_each_parser_names_its_tool(self):
        parsers = [
            (smi_xml.parse, 'nvidia-smi -q -x'),
            (smi_text.parse, 'nvidia-smi -q'),
            (query_csv.parse, 'nvidia-smi --query-gpu'),
            (nvlink.parse, 'nvidia-smi nvlink -s'),
            (topo.parse, 'nvidia-smi topo -m'),
            (dcgm.parse, 'dcgmi diag'),
            (gpu_burn.parse, 'gpu_burn'),
        ]
        for parse, tool in parsers:
            error = self.assertRaises(common.ParseError, parse, '  \n')
            self.assertEqual('%s: the output is empty' % tool, str(error))
