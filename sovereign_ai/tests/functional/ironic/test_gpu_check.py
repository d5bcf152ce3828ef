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

"""``sovereign-ai gpu-check`` run end to end as a process.

The fake tools of :mod:`fakes` stand in for nvidia-smi, dmesg and gpu_burn;
GPU presence comes from a temporary sysfs tree because this machine has no
GPU.
"""

import json
import os
import subprocess
import sys

import fixtures

from sovereign_ai.tests import base
from sovereign_ai.tests.functional.ironic import fakes


# The console script's code, run with this interpreter so the test does not
# depend on where the script is installed.
_MAIN = 'import sys; from sovereign_ai.cmd.main import main; sys.exit(main())'


class GpuCheckTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tools = self.useFixture(fakes.FakeTools())
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.sysfs = os.path.join(self.tmp, 'sys')
        os.makedirs(self.sysfs)
        self.config = os.path.join(self.tmp, 'sovereign-ai.conf')
        with open(self.config, 'w') as handle:
            handle.write('[sovereign_ai_ironic]\nquery_format = text\n'
                         'command_timeout = 5\n')

    def gpu_check(self, *arguments, path=None):
        env = dict(os.environ)
        env['PATH'] = path if path is not None else env['PATH']
        process = subprocess.run(
            [sys.executable, '-c', _MAIN, 'gpu-check',
             '--sysfs-root', self.sysfs] + list(arguments),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            timeout=120, universal_newlines=True)
        return process.returncode, process.stdout, process.stderr

    def test_no_nvidia_smi(self):
        # This machine has neither a GPU nor nvidia-smi.
        status, stdout, stderr = self.gpu_check(path='/usr/bin:/bin')
        self.assertEqual(3, status)
        self.assertEqual('', stdout)
        self.assertEqual('sovereign-ai gpu-check: nothing to check: '
                         'nvidia-smi not found (no NVIDIA GPU is on the PCI '
                         'bus).\n', stderr)

    def test_nvidia_smi_without_gpu(self):
        self.tools.add('nvidia-smi', [('', [fakes.response(
            stdout='No devices were found\n', exit=6)])])
        status, stdout, stderr = self.gpu_check()
        self.assertEqual(3, status)
        self.assertEqual('sovereign-ai gpu-check: nothing to check: no '
                         'NVIDIA GPU found (nvidia-smi -q -x exited with '
                         'status 6: No devices were found).\n', stderr)

    def test_healthy_h100_text(self):
        self.tools.install_healthy_node()
        fakes.write_sysfs(self.sysfs, gpu_count=8, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check(
            '--config-file', self.config, '--expected-gpu-count', '8')
        self.assertEqual(0, status, stderr)
        self.assertIn('validate_gpus: PASSED on 8 GPU(s), 0 fault(s), '
                      '16 warning(s)\n', stdout)
        self.assertTrue(stdout.endswith('gpu-check: healthy\n'), stdout)

    def test_healthy_xml_json(self):
        self.tools.add('nvidia-smi', [
            ('-q -x', [fakes.response('nvidia-smi-q-x_a10g_515.105.01.xml')]),
            ('nvlink -s', [fakes.response()]),
            ('topo -m', [fakes.response(exit=1)]),
        ])
        self.tools.add('dmesg', [('', [fakes.response(stdout='')])])
        status, stdout, stderr = self.gpu_check('--format', 'json')
        self.assertEqual(0, status, stderr)
        document = json.loads(stdout)
        self.assertEqual('healthy', document['status'])
        self.assertEqual(1, document['reports'][0]['gpu_count'])
        self.assertEqual(['pcie_link', 'persistence_mode'], sorted(
            entry['check'] for entry in document['reports'][0]['findings']))

    def test_faults_found(self):
        self.tools.add('nvidia-smi', [
            ('-q', [fakes.response(
                'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')]),
            ('nvlink -s', [fakes.response()]),
            ('topo -m', [fakes.response(exit=1)]),
        ])
        self.tools.add('dmesg', [('', [fakes.response(stdout='')])])
        fakes.write_sysfs(self.sysfs, gpu_count=1, nvswitch_count=0)
        report_dir = os.path.join(self.tmp, 'reports')
        status, stdout, stderr = self.gpu_check(
            '--config-file', self.config, '--report-dir', report_dir)
        self.assertEqual(1, status)
        self.assertIn('  FAULT: GPU 0 (00000000:07:00.0, serial '
                      '0000000000001): a row remapping is pending, so the '
                      'GPU needs a reset (threshold: none pending)\n', stdout)
        self.assertTrue(stdout.endswith('gpu-check: 2 fault(s) found\n'))
        self.assertEqual(1, len([name for name in os.listdir(report_dir)
                                 if name.endswith('.json')]))

    def test_burnin(self):
        self.tools.install_healthy_node()
        self.tools.add('gpu_burn', [('', [fakes.response(
            'gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log', sleep=0.5)])])
        fakes.write_sysfs(self.sysfs, gpu_count=8, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check(
            '--config-file', self.config, '--burnin', '2',
            '--backend', 'gpu-burn', '--set', 'sample_interval=0.1')
        self.assertEqual(0, status, stdout + stderr)
        self.assertIn('burnin_gpus: PASSED on 8 GPU(s), 0 fault(s)', stdout)
        self.assertIn('  throughput (Gflop/s): GPU 0 16942, GPU 1 17093, ',
                      stdout)
        self.assertEqual(['-m', '95%', '2'],
                         self.tools.calls('gpu_burn')[0]['argv'])

    def test_burnin_hang(self):
        self.tools.install_healthy_node()
        self.tools.add('gpu_burn', [('', [fakes.response(sleep=30)])])
        fakes.write_sysfs(self.sysfs, gpu_count=8, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check(
            '--config-file', self.config, '--burnin', '1',
            '--set', 'timeout=1')
        self.assertEqual(1, status)
        self.assertIn('  ERROR: gpu_burn timed out after 1 seconds and was '
                      'killed\n', stdout)

    def test_invalid_set_value(self):
        status, stdout, stderr = self.gpu_check(
            '--set', 'max_retired_pages=many')
        self.assertEqual(2, status)
        self.assertEqual("sovereign-ai: error: argument max_retired_pages="
                         "'many' is not an integer\n", stderr)

    def test_invalid_set_form(self):
        status, stdout, stderr = self.gpu_check('--set', 'persistence_mode')
        self.assertEqual(2, status)
        self.assertIn("--set 'persistence_mode' is not NAME=VALUE", stderr)
        self.assertNotIn('Traceback', stderr)
