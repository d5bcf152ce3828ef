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
        os.makedirs(os.path.join(self.sysfs, 'bus', 'pci', 'devices'))
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
        self.assertEqual('sovereign-ai gpu-check: nothing to check: no '
                         'NVIDIA GPU is on the PCI bus, and nvidia-smi is '
                         'not installed.\n', stderr)

    def test_no_gpu_json(self):
        status, stdout, stderr = self.gpu_check('--format', 'json',
                                                path='/usr/bin:/bin')
        self.assertEqual(3, status)
        document = json.loads(stdout)
        self.assertEqual('no-gpu', document['status'])
        self.assertEqual(3, document['exit_status'])
        self.assertEqual('nothing to check: no NVIDIA GPU is on the PCI bus, '
                         'and nvidia-smi is not installed',
                         document['message'])
        self.assertEqual('', stderr)

    def test_gpu_without_driver(self):
        fakes.write_sysfs(self.sysfs, gpu_count=1, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check(path='/usr/bin:/bin')
        self.assertEqual(1, status)
        self.assertEqual(
            'validate_gpus: ERROR: 1 NVIDIA GPU is on the PCI bus but '
            'nvidia-smi was not found on PATH: install the NVIDIA driver or '
            'set [sovereign_ai_ironic] nvidia_smi_command\n'
            'gpu-check: validate_gpus did not complete\n', stdout)

    def test_gpus_without_driver_json(self):
        fakes.write_sysfs(self.sysfs, gpu_count=2, nvswitch_count=0)
        with open(self.config, 'a') as handle:
            handle.write('nvidia_smi_command = /opt/nvidia/nvidia-smi\n')
        status, stdout, stderr = self.gpu_check(
            '--format', 'json', '--config-file', self.config,
            path='/usr/bin:/bin')
        self.assertEqual(1, status)
        document = json.loads(stdout)
        self.assertEqual('faults', document['status'])
        self.assertEqual(1, document['exit_status'])
        self.assertEqual(
            '2 NVIDIA GPUs are on the PCI bus but /opt/nvidia/nvidia-smi is '
            'not an executable file: install the NVIDIA driver or set '
            '[sovereign_ai_ironic] nvidia_smi_command',
            document['reports'][0]['error'])

    def test_driver_not_answering(self):
        # The message nvidia-smi prints when the kernel module is not
        # loaded.
        self.tools.add('nvidia-smi', [('', [fakes.response(
            stdout="NVIDIA-SMI has failed because it couldn't communicate "
                   "with the NVIDIA driver.\n", exit=9)])])
        fakes.write_sysfs(self.sysfs, gpu_count=1, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check()
        self.assertEqual(1, status)
        self.assertIn("validate_gpus: ERROR: nvidia-smi -q -x exited with "
                      "status 9: NVIDIA-SMI has failed because it couldn't "
                      "communicate with the NVIDIA driver.\n", stdout)
        self.assertTrue(stdout.endswith(
            'gpu-check: validate_gpus did not complete\n'), stdout)

    def test_gpu_listed_by_sysfs_only(self):
        self.tools.add('nvidia-smi', [('', [fakes.response(
            stdout='No devices were found\n', exit=6)])])
        fakes.write_sysfs(self.sysfs, gpu_count=1, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check('--format', 'json')
        self.assertEqual(1, status)
        document = json.loads(stdout)
        self.assertEqual('faults', document['status'])
        self.assertEqual('validate_gpus did not complete',
                         document['message'])
        self.assertEqual('nvidia-smi -q -x exited with status 6: No devices '
                         'were found', document['reports'][0]['error'])

    def test_sysfs_root_missing(self):
        missing = os.path.join(self.tmp, 'sysfs')
        status, stdout, stderr = self.gpu_check('--sysfs-root', missing)
        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: --sysfs-root %s: directory '
                         'not found; give the directory where sysfs is '
                         'mounted (default: /sys)\n' % missing, stderr)

    def test_sysfs_root_not_sysfs(self):
        status, stdout, stderr = self.gpu_check('--sysfs-root', self.tmp)
        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: --sysfs-root %s: '
                         'bus/pci/devices not found, so this is not a sysfs '
                         'tree; give the directory where sysfs is mounted '
                         '(default: /sys)\n' % self.tmp, stderr)

    def test_invalid_input_json(self):
        status, stdout, stderr = self.gpu_check(
            '--format', 'json', '--sysfs-root', self.tmp)
        self.assertEqual(2, status)
        document = json.loads(stdout)
        self.assertEqual('invalid-input', document['status'])
        self.assertEqual(2, document['exit_status'])
        self.assertIn('--sysfs-root %s' % self.tmp, document['message'])

    def test_negative_gpu_count(self):
        status, stdout, stderr = self.gpu_check('--expected-gpu-count', '-1')
        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: argument --expected-gpu-count'
                         '=-1 is below the minimum 0\n', stderr)

    def test_help_exit_statuses(self):
        status, stdout, stderr = self.gpu_check('--help')
        self.assertEqual(0, status)
        self.assertIn('  1  a check found a fault, a tool was missing, failed '
                      'or timed out, or\n     an NVIDIA GPU is on the PCI '
                      'bus but nvidia-smi is not installed\n', stdout)
        self.assertIn('  3  nothing to check: no NVIDIA GPU is on the PCI '
                      'bus', stdout)

    def test_nvidia_smi_without_gpu(self):
        self.tools.add('nvidia-smi', [('', [fakes.response(
            stdout='No devices were found\n', exit=6)])])
        status, stdout, stderr = self.gpu_check()
        self.assertEqual(3, status)
        self.assertEqual('sovereign-ai gpu-check: nothing to check: no '
                         'NVIDIA GPU is on the PCI bus, and nvidia-smi lists '
                         'none (nvidia-smi -q -x exited with status 6: No '
                         'devices were found).\n', stderr)

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
        self.assertEqual('healthy', document['message'])
        self.assertEqual(0, document['exit_status'])
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
        self.assertIn('burnin_gpus: ERROR: gpu_burn timed out after 1 '
                      'seconds and was killed\n', stdout)
        self.assertTrue(stdout.endswith(
            'gpu-check: burnin_gpus did not complete\n'), stdout)

    def test_burnin_tool_missing(self):
        self.tools.install_healthy_node()
        fakes.write_sysfs(self.sysfs, gpu_count=8, nvswitch_count=0)
        status, stdout, stderr = self.gpu_check(
            '--config-file', self.config, '--burnin', '2',
            '--expected-gpu-count', '4',
            path=self.tools.bin + os.pathsep + '/usr/bin:/bin')
        self.assertEqual(1, status)
        self.assertIn('validate_gpus: FAILED on 8 GPU(s), 1 fault(s), '
                      '16 warning(s)\n', stdout)
        self.assertIn('burnin_gpus: ERROR: no burn-in tool was found: '
                      'neither dcgmi nor gpu_burn is installed\n', stdout)
        self.assertTrue(stdout.endswith(
            'gpu-check: 1 fault(s) found; burnin_gpus did not complete\n'),
            stdout)

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
