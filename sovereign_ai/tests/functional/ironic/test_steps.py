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

"""The GPU steps run through IPA's own hardware manager dispatch.

Steps are listed and executed through IPA's deploy, clean and service
extensions, which load the hardware managers from the entry points as the
agent does at start-up. nvidia-smi, dcgmi, gpu_burn and dmesg are fake
executables first on PATH. The only stand-in for hardware is the sysfs and
procfs tree: this machine has no GPU, so GPU and NVSwitch presence comes
from a temporary directory.
"""

import json
import os
import re

import fixtures
from ironic_python_agent import config as ipa_config
from ironic_python_agent import errors
from ironic_python_agent.extensions import clean
from ironic_python_agent.extensions import deploy
from ironic_python_agent.extensions import service
from ironic_python_agent import hardware
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from sovereign_ai.ironic import hardware_manager
from sovereign_ai.tests import base
from sovereign_ai.tests.functional.ironic import fakes

CONF = cfg.CONF
H100 = 'nvidia-smi-q_8x-h100-80gb-hbm3_535.161.08.txt'
H100_SERIALS = ['%013d' % number for number in range(1, 9)]


class StepTestBase(base.TestCase):

    def setUp(self):
        super().setUp()
        ipa_config.populate_config()
        self.config = self.useFixture(config_fixture.Config(CONF))
        # The generic manager would wait for a root disk on every step.
        self.config.config(disk_wait_attempts=0)
        self.log_dir = self.useFixture(fixtures.TempDir()).path
        self.config.config(log_dir=self.log_dir, query_format='text',
                           command_timeout=5, group='sovereign_ai_ironic')

        # GPU presence: a fake sysfs tree, because this machine has none.
        self.sysfs = self.useFixture(fixtures.TempDir()).path
        self.proc = self.useFixture(fixtures.TempDir()).path
        fakes.write_sysfs(self.sysfs, gpu_count=8, nvswitch_count=4)
        fakes.write_proc(self.proc)
        self.useFixture(fixtures.MonkeyPatch(
            'sovereign_ai.ironic.hardware_manager.GpuHardwareManager.'
            'sysfs_root', self.sysfs))
        self.useFixture(fixtures.MonkeyPatch(
            'sovereign_ai.ironic.hardware_manager.GpuHardwareManager.'
            'proc_root', self.proc))

        # IPA caches the managers and the node across calls.
        self.useFixture(fixtures.MonkeyPatch(
            'ironic_python_agent.hardware._global_managers', None))
        self.useFixture(fixtures.MonkeyPatch(
            'ironic_python_agent.hardware.NODE', None))
        self.tools = self.useFixture(fakes.FakeTools())

    def node(self, kind='deploy', **properties):
        node = {'uuid': '1be26c0b-03f2-4d2e-ae87-c02d7f33c123',
                'properties': properties, 'driver_internal_info': {}}
        if kind == 'deploy':
            node.update(provision_state='deploying',
                        deploy_step={'step': 'validate_gpus'})
        elif kind == 'clean':
            node.update(provision_state='cleaning',
                        clean_step={'step': 'validate_gpus'})
        else:
            node.update(provision_state='servicing',
                        service_step={'step': 'validate_gpus'})
        return node

    def run_step(self, name, kind='deploy', node=None, **arguments):
        node = node or self.node(kind)
        step = {'step': name, 'priority': 0, 'interface': 'deploy',
                'args': arguments}
        versions = hardware.get_current_versions()
        if kind == 'deploy':
            command = deploy.DeployExtension().execute_deploy_step(
                step=step, node=node, ports=[], deploy_version=versions)
        elif kind == 'clean':
            command = clean.CleanExtension().execute_clean_step(
                step=step, node=node, ports=[], clean_version=versions)
        else:
            command = service.ServiceExtension().execute_service_step(
                step=step, node=node, ports=[], service_version=versions)
        command.join()
        return command

    def assertStepFails(self, command, error_class, text):
        """Assert the error class and the text up to the report path."""
        self.assertEqual('FAILED', command.command_status)
        self.assertIsInstance(command.command_error, error_class)
        message = str(command.command_error)
        head, separator, path = message.rpartition(' Report: ')
        self.assertEqual(text, head)
        self.assertEqual(' Report: ', separator)
        return path

    def report(self, path):
        self.assertTrue(path.startswith(self.log_dir), path)
        with open(path) as handle:
            return json.load(handle)


class StepListingTest(StepTestBase):

    def test_manager_loaded_by_ipa(self):
        names = [type(manager).__name__
                 for manager in hardware.get_managers()]
        self.assertEqual('GpuHardwareManager', names[0])
        self.assertIn('GenericHardwareManager', names)
        self.assertEqual('1.0',
                         hardware.get_current_versions()['sovereign_ai_gpu'])

    def test_deploy_steps(self):
        result = deploy.DeployExtension().get_deploy_steps(
            node=self.node(), ports=[]).command_result
        steps = {step['step']: step
                 for step in result['deploy_steps']['GpuHardwareManager']}
        self.assertEqual(['burnin_gpus', 'validate_gpus'], sorted(steps))
        self.assertEqual(0, steps['validate_gpus']['priority'])
        self.assertEqual('deploy', steps['burnin_gpus']['interface'])
        self.assertIn('expected_gpu_count', steps['validate_gpus']['argsinfo'])
        self.assertIn('duration', steps['burnin_gpus']['argsinfo'])
        self.assertNotIn('abortable', steps['burnin_gpus'])
        self.assertEqual('1.0', result['hardware_manager_version'][
            'sovereign_ai_gpu'])

    def test_clean_and_service_steps_abortable(self):
        for extension, method, key in (
                (clean.CleanExtension(), 'get_clean_steps', 'clean_steps'),
                (service.ServiceExtension(), 'get_service_steps',
                 'service_steps')):
            result = getattr(extension, method)(
                node=self.node(), ports=[]).command_result
            steps = result[key]['GpuHardwareManager']
            self.assertEqual({'validate_gpus', 'burnin_gpus'},
                             {step['step'] for step in steps})
            self.assertEqual({True}, {step['abortable'] for step in steps})

    def test_no_gpu_no_manager(self):
        for device in os.listdir(os.path.join(self.sysfs, 'bus', 'pci',
                                              'devices')):
            with open(os.path.join(self.sysfs, 'bus', 'pci', 'devices',
                                   device, 'vendor'), 'w') as handle:
                handle.write('0x8086\n')
        names = [type(manager).__name__
                 for manager in hardware.get_managers()]
        self.assertNotIn('GpuHardwareManager', names)


class ValidateStepTest(StepTestBase):

    def test_healthy_h100(self):
        self.tools.install_healthy_node()
        command = self.run_step('validate_gpus', expected_gpu_count=8,
                                expected_gpu_model='H100 80GB HBM3')
        self.assertEqual('SUCCEEDED', command.command_status)
        result = command.command_result['deploy_result']
        self.assertEqual(0, result['faults'])
        self.assertEqual(8, result['gpus'])
        report = self.report(result['report'])
        self.assertEqual([], [entry for entry in report['findings']
                              if entry['severity'] == 'fault'])
        raw = result['report'][:-len('.json')]
        self.assertTrue(os.path.exists(os.path.join(
            raw, 'nvidia-smi-q.stdout.txt')))

    def test_healthy_a100_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'nvidia-smi-q_8x-a100-sxm4-40gb_460.32.03.txt')
        self.tools.install_healthy_node()
        with open(path) as handle:
            self.tools.add('nvidia-smi', [
                ('-q', [fakes.response(stdout=handle.read())]),
                ('nvlink -s', [fakes.response(
                    'nvidia-smi-nvlink-s_8x-a100-sxm4-80gb_all-up.txt')]),
                ('topo -m', [fakes.response(exit=1)]),
            ])
        self._set_gpus(8, nvswitches=0)
        command = self.run_step('validate_gpus', 'clean',
                                expected_gpu_count=8,
                                expected_gpu_model='A100-SXM4-40GB')
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)
        result = command.command_result['clean_result']
        self.assertEqual(0, result['faults'])
        # Persistence mode is disabled on every GPU of this capture.
        self.assertEqual(8, result['warnings'])

    def test_logs_collected(self):
        self.tools.install_healthy_node()
        self.run_step('validate_gpus')
        io_dict, file_list = {}, []
        hardware.dispatch_to_all_managers('collect_system_logs', io_dict,
                                          file_list)
        self.assertIn(self.log_dir, file_list)

    def test_expected_count_from_node_properties(self):
        self.tools.install_healthy_node()
        node = self.node('clean')
        node['properties'] = {'sovereign_ai_gpu_count': 16}
        command = self.run_step('validate_gpus', 'clean', node=node)
        self.assertStepFails(
            command, errors.CleaningError,
            'Clean step failed: validate_gpus found 1 fault(s) on 0 of 8 '
            'GPU(s). Node: nvidia-smi lists 8 GPUs, expected 16.')

    def test_row_remap_pending_cleaning(self):
        fakes.write_sysfs(self.useFixture(fixtures.TempDir()).path)
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [
            ('-q', [fakes.response(
                'nvidia-smi-q_a10_row-remap-pending_535.129.03.txt')]),
            ('nvlink -s', [fakes.response()]),
            ('topo -m', [fakes.response(exit=1)]),
        ])
        self._set_gpus(1, nvswitches=0)
        command = self.run_step('validate_gpus', 'clean')
        path = self.assertStepFails(
            command, errors.CleaningError,
            'Clean step failed: validate_gpus found 2 fault(s) on 1 of 1 '
            'GPU(s). GPU 0 (00000000:07:00.0, serial 0000000000001): a row '
            'remapping is pending, so the GPU needs a reset (threshold: none '
            'pending); 4 rows remapped after uncorrectable errors '
            '(threshold: 0).')
        report = self.report(path)
        self.assertEqual('row_remapping', report['findings'][0]['check'])

    def _set_gpus(self, count, nvswitches):
        root = os.path.join(self.sysfs, 'bus')
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in filenames:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)
        fakes.write_sysfs(self.sysfs, gpu_count=count,
                          nvswitch_count=nvswitches)

    def test_inforom_warning_servicing(self):
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [
            ('-q', [fakes.response(
                H100, 'nvidia-smi_inforom-warning_constructed.txt',
                exit=14)]),
            ('nvlink -s', [fakes.response()]),
            ('topo -m', [fakes.response(exit=1)]),
        ])
        command = self.run_step('validate_gpus', 'service')
        self.assertStepFails(
            command, errors.ServicingError,
            'Service step failed: validate_gpus found 1 fault(s) on 1 of 8 '
            'GPU(s). GPU 1 (00000000:3B:00.0, serial 0000000000002): the '
            'infoROM is corrupted (threshold: no infoROM warning).')

    def test_xid_and_inactive_nvlinks(self):
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [
            ('-q', [fakes.response(H100)]),
            ('nvlink -s', [fakes.response(
                'nvidia-smi-nvlink-s_v100-sxm2-32gb_inactive-links.txt')]),
            ('topo -m', [fakes.response(exit=1)]),
        ])
        self.tools.add('dmesg', [('', [fakes.response(
            'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')])])
        command = self.run_step('validate_gpus')
        message = str(command.command_error)
        self.assertIsInstance(command.command_error, errors.DeploymentError)
        self.assertTrue(message.startswith(
            'Deploy step failed: validate_gpus found 5 fault(s) on 4 of 8 '
            'GPU(s). GPU 3 (00000000:5D:00.0, serial 0000000000004): 2 '
            'NVLink links inactive (links 3, 5; threshold: 0). GPU 4 '
            '(00000000:9B:00.0, serial 0000000000005): 1 NVLink links '
            'inactive (links 1; threshold: 0); Xid 119 logged 5 time(s) '
            'since boot: pid=2024380, name=nvidia-smi, Timeout after 6s of '
            'waiting for RPC response from GPU4 GSP!'), message)

    def test_nvidia_smi_hangs(self):
        self.config.config(command_timeout=1, group='sovereign_ai_ironic')
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [('-q', [fakes.response(sleep=30)])])
        command = self.run_step('validate_gpus')
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: validate_gpus failed: nvidia-smi timed out '
            'after 1 seconds and was killed.')

    def test_nvidia_smi_missing(self):
        missing = os.path.join(self.tools.bin, 'missing', 'nvidia-smi')
        self.config.config(nvidia_smi_command=missing,
                           group='sovereign_ai_ironic')
        command = self.run_step('validate_gpus', 'clean')
        self.assertStepFails(
            command, errors.CleaningError,
            'Clean step failed: validate_gpus failed: %s was not found: '
            'install it in the ramdisk or set its path in '
            '[sovereign_ai_ironic].' % missing)

    def test_truncated_xml(self):
        self.config.config(query_format='xml', group='sovereign_ai_ironic')
        path = fakes.fixture('nvidia-smi-q-x_a10g_515.105.01.xml')
        with open(path) as handle:
            half = handle.read()[:9000]
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [('-q -x', [fakes.response(
            stdout=half)])])
        command = self.run_step('validate_gpus')
        message = str(command.command_error)
        self.assertTrue(message.startswith(
            'Deploy step failed: validate_gpus failed: nvidia-smi -q -x: the '
            'XML is truncated or malformed ('), message)

    def test_empty_output(self):
        self.tools.install_healthy_node()
        self.tools.add('nvidia-smi', [('-q', [fakes.response()])])
        command = self.run_step('validate_gpus')
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: validate_gpus failed: nvidia-smi -q: the '
            'output is empty.')

    def test_invalid_argument(self):
        self.tools.install_healthy_node()
        command = self.run_step('validate_gpus', expected_gpu_count=-1)
        self.assertEqual('FAILED', command.command_status)
        self.assertEqual(
            'Deploy step failed: validate_gpus: argument expected_gpu_count='
            '-1 is below the minimum 0', str(command.command_error))
        self.assertEqual([], self.tools.calls())


class BurninStepTest(StepTestBase):

    def setUp(self):
        super().setUp()
        self.tools.install_healthy_node()

    def add_gpu_burn(self, *files, stdout='', sleep=0.5, exit=0):
        self.tools.add('gpu_burn', [('', [fakes.response(
            *files, stdout=stdout, sleep=sleep, exit=exit)])])

    def burn(self, kind='deploy', **arguments):
        arguments.setdefault('duration', 1)
        arguments.setdefault('sample_interval', 0.1)
        return self.run_step('burnin_gpus', kind, **arguments)

    def test_gpu_burn_pass(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        command = self.burn(gpu_burn_doubles=True, gpu_burn_tensor_cores=True)
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)
        result = command.command_result['deploy_result']
        self.assertEqual('gpu-burn', result['backend'])
        self.assertEqual(17093.0, result['throughput_gflops']['1'])
        call = self.tools.calls('gpu_burn')[0]
        self.assertEqual(['-d', '-tc', '-m', '95%', '1'], call['argv'])
        self.assertEqual('PCI_BUS_ID', call['cuda_device_order'])
        self.assertEqual(os.path.realpath(self.tools.bin), call['cwd'])

    def test_gpu_burn_symlink_cwd(self):
        real_dir = os.path.join(self.tools.root, 'opt', 'gpu-burn')
        os.makedirs(real_dir)
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        real_path = os.path.join(real_dir, 'gpu_burn')
        os.rename(os.path.join(self.tools.bin, 'gpu_burn'), real_path)
        os.symlink(real_path, os.path.join(self.tools.bin, 'gpu_burn'))
        command = self.burn()
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)
        self.assertEqual(os.path.realpath(real_dir),
                         self.tools.calls('gpu_burn')[0]['cwd'])
        self.assertGreaterEqual(len(self.tools.calls('nvidia-smi')), 3)

    def test_gpu_burn_faulty(self):
        self._two_gpus()
        self.add_gpu_burn('gpu-burn_2gpu_faulty_constructed.txt')
        command = self.burn()
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus found 2 fault(s) on 1 of 2 '
            'GPU(s). GPU 1 (00000000:3B:00.0, serial 0000000000002): '
            'gpu_burn reports FAULTY (computation errors); 12 computation '
            'errors (threshold: 0).')

    def test_gpu_burn_faulty_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'gpu-burn_16gpu_forced-miscompare_faulty_exit0.txt')
        bus_ids = ['00000000:%02X:00.0' % (0x10 + index)
                   for index in range(16)]
        self._sampling(bus_ids)
        with open(path) as handle:
            self.add_gpu_burn(stdout=handle.read())
        command = self.burn()
        message = str(command.command_error)
        self.assertIn('burnin_gpus found 23 fault(s) on 16 of 16 GPU(s).',
                      message)
        self.assertIn('GPU 1 (00000000:11:00.0, serial 0000000000002): '
                      'gpu_burn reports FAULTY (computation errors); '
                      '-524288000 computation errors (threshold: 0).',
                      message)

    def test_gpu_burn_init_failure(self):
        self._two_gpus()
        self.add_gpu_burn('gpu-burn_2gpu_init-failure_constructed.txt')
        command = self.burn()
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus found 3 fault(s) on 2 of 2 '
            'GPU(s). Node: gpu_burn printed "Couldn\'t init a GPU test". '
            'GPU 0 (00000000:19:00.0, serial 0000000000001): no progress '
            '(0 iterations, 0.0 Gflop/s; threshold: above 0). GPU 1 '
            '(00000000:3B:00.0, serial 0000000000002): no progress (0 '
            'iterations, 0.0 Gflop/s; threshold: above 0).')

    def test_gpu_burn_init_failure_real(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu',
            'gpu-burn_6gpu_init-failure_but-reports-ok.txt')
        self._sampling(fakes.H100_BUS_IDS[:6])
        with open(path) as handle:
            self.add_gpu_burn(stdout=handle.read())
        message = str(self.burn().command_error)
        self.assertIn('burnin_gpus found 7 fault(s) on 6 of 6 GPU(s). Node: '
                      'gpu_burn printed "Couldn\'t init a GPU test".',
                      message)

    def test_gpu_burn_no_cuda_devices(self):
        path = base.skip_unless_shared(
            self, 'fixtures', 'gpu', 'gpu-burn_8gpu_no-cuda-devices.txt')
        with open(path) as handle:
            self.add_gpu_burn(stdout=handle.read(), exit=134)
        message = str(self.burn().command_error)
        self.assertIn('Node: gpu_burn printed "No CUDA devices"; gpu_burn '
                      'printed "terminate called"; gpu_burn printed no '
                      'per-GPU result ("Tested N GPUs"), so the run did not '
                      'complete.', message)

    def test_gpu_burn_clients_died(self):
        self._two_gpus()
        self.add_gpu_burn('gpu-burn_2gpu_died_constructed.txt', exit=123)
        command = self.burn(kind='clean')
        self.assertStepFails(
            command, errors.CleaningError,
            'Clean step failed: burnin_gpus found 4 fault(s) on 1 of 2 '
            'GPU(s). Node: gpu_burn printed "No clients are alive"; gpu_burn '
            'printed no per-GPU result ("Tested N GPUs"), so the run did not '
            'complete. GPU 0 (00000000:19:00.0, serial 0000000000001): its '
            'gpu_burn worker died; no progress (1130 iterations, 0.0 '
            'Gflop/s; threshold: above 0).')

    def test_gpu_burn_hangs(self):
        self.add_gpu_burn(sleep=30)
        command = self.burn(timeout=1)
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus failed: gpu_burn timed out '
            'after 1 seconds and was killed.')

    def test_sample_fields_renamed(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        rejected = fakes.response(
            stdout='Field "clocks_throttle_reasons.hw_slowdown" is not a '
                   'valid field to query.\n', exit=2)
        self.tools.add('nvidia-smi', [
            ('*clocks_throttle_reasons', [rejected]),
            ('--query-gpu', [
                fakes.response(stdout=fakes.sample_csv(utilization=0)),
                fakes.response(stdout=fakes.sample_csv())]),
        ])
        command = self.burn()
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)
        queries = [call['argv'][0] for call in self.tools.calls('nvidia-smi')]
        self.assertIn('clocks_throttle_reasons.hw_slowdown', queries[0])
        self.assertIn('clocks_event_reasons.hw_slowdown', queries[1])

    def test_thermal_slowdown_under_load(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        self._sampling(overrides={2: {'active': ('hw_slowdown',
                                                 'hw_thermal_slowdown')}})
        message = str(self.burn().command_error)
        self.assertIn(
            'burnin_gpus found 2 fault(s) on 1 of 8 GPU(s). GPU 2 '
            '(00000000:4C:00.0, serial 0000000000003): clocks event reason '
            'hw_slowdown was active under load in ', message)
        self.assertIn('clocks event reason hw_thermal_slowdown was active '
                      'under load in ', message)

    def test_pcie_downshift_under_load(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        self._sampling(overrides={5: {'gen': 3, 'width': 8}})
        message = str(self.burn().command_error)
        self.assertIn(
            'GPU 5 (00000000:BB:00.0, serial 0000000000006): PCIe link '
            'generation peaked at 3 under load (threshold: the maximum, 5); '
            'PCIe link width peaked at 8 under load (threshold: the maximum, '
            '16).', message)

    def test_ecc_errors_during_run(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        self._sampling(overrides={1: {'ecc': 2}})
        message = str(self.burn().command_error)
        self.assertIn('GPU 1 (00000000:3B:00.0, serial 0000000000002): 2 new '
                      'uncorrectable ECC errors during the run (threshold: '
                      '0).', message)

    def test_xid_during_run(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        self.tools.add('dmesg', [('', [
            fakes.response(stdout='[    0.000000] Linux version 6.1.0\n'),
            fakes.response(
                'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')])])
        message = str(self.burn().command_error)
        self.assertIn('GPU 4 (00000000:9B:00.0, serial 0000000000005): Xid '
                      '119 logged 5 time(s) during the run:', message)

    def test_xid_before_run_ignored(self):
        self.add_gpu_burn('gpu-burn_8x-a100-sxm4-80gb_doubles-tc_pass.log')
        self.tools.add('dmesg', [('', [fakes.response(
            'dmesg_xid119-gsp-rpc-timeout_h100-poweredge-xe9680.log')])])
        command = self.burn()
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)

    def test_throughput_below_median(self):
        processed = ' - '.join(
            '%d (%d Gflop/s)' % (6783, 12000 if index == 3 else 17000)
            for index in range(8))
        errors_field = ' - '.join('0' for _ in range(8))
        line = "\r100.0%%  proc'd: %s   errors: %s   temps: 60 C\n" % (
            processed, errors_field)
        summary = 'Tested 8 GPUs:\n' + ''.join(
            '\tGPU %d: OK\n' % index for index in range(8))
        self.add_gpu_burn(stdout=line + summary)
        command = self.burn(max_throughput_deficit_percent=20)
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus found 1 fault(s) on 1 of 8 '
            'GPU(s). GPU 3 (00000000:5D:00.0, serial 0000000000004): 12000 '
            'Gflop/s is 29.4% below the node median of 17000 Gflop/s '
            '(threshold: 20.0%).')

    def test_dcgm_3x_pass(self):
        self._sampling(fakes.H100_BUS_IDS[:1])
        self.tools.add('dcgmi', [('diag -r 3 -j', [fakes.response(
            'dcgmi-diag-r3-j_tesla-t4_dcgm3x.json', sleep=0.3)])])
        command = self.burn(backend='auto')
        self.assertEqual('SUCCEEDED', command.command_status,
                         command.command_error)
        result = command.command_result['deploy_result']
        self.assertEqual('dcgm', result['backend'])
        self.assertEqual({'0': 11103.02}, result['throughput_gflops'])

    def test_dcgm_4x_failure_exit_226(self):
        self._two_gpus()
        self.tools.add('dcgmi', [('diag -r 2 -j', [fakes.response(
            'dcgmi-diag-r2-j_dcgm4x_fail_constructed.json', exit=226)])])
        command = self.burn('service', backend='dcgm', dcgm_level=2)
        self.assertStepFails(
            command, errors.ServicingError,
            'Service step failed: burnin_gpus found 2 fault(s) on 1 of 2 '
            'GPU(s). Node: dcgmi diag exited 226: DCGM_ST_NVVS_ERROR (a '
            'diagnostic test failed). GPU 1 (00000000:3B:00.0, serial '
            '0000000000002): DCGM test "memory" failed: GPU 1 had a '
            'double-bit ECC error.')

    def test_dcgm_exit_205_without_json(self):
        self._two_gpus()
        self.tools.add('dcgmi', [('diag', [fakes.response(
            stdout='Error: unable to complete diagnostic\n', exit=205)])])
        command = self.burn(backend='dcgm')
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus found 2 fault(s) on 0 of 2 '
            'GPU(s). Node: dcgmi diag exited 205: DCGM_ST_NVVS_ISOLATE_ERROR '
            '(a failure that requires isolating the GPU); dcgmi diag exited '
            '205 and printed no JSON results: "Error: unable to complete '
            'diagnostic".')

    def test_dcgm_truncated_json(self):
        self._two_gpus()
        path = fakes.fixture('dcgmi-diag-r2-j_dcgm4x_fail_constructed.json')
        with open(path) as handle:
            truncated = handle.read()[:700]
        self.tools.add('dcgmi', [('diag', [fakes.response(
            stdout=truncated, exit=226)])])
        message = str(self.burn(backend='dcgm').command_error)
        self.assertIn('Node: dcgmi diag exited 226: DCGM_ST_NVVS_ERROR (a '
                      'diagnostic test failed); dcgmi diag: the JSON is '
                      'truncated or malformed (', message)

    def test_backend_missing(self):
        command = self.burn(backend='dcgm')
        self.assertStepFails(
            command, errors.DeploymentError,
            'Deploy step failed: burnin_gpus failed: dcgmi (backend dcgm) '
            'was not found: install it in the ramdisk.')

    def test_unknown_backend(self):
        command = self.burn(backend='stress-ng')
        self.assertEqual(
            "Deploy step failed: burnin_gpus: argument backend='stress-ng' "
            "is not one of: auto, dcgm, gpu-burn", str(command.command_error))

    def _two_gpus(self):
        self._sampling(fakes.H100_BUS_IDS[:2])

    def _sampling(self, bus_ids=fakes.H100_BUS_IDS, overrides=None):
        self.tools.add('nvidia-smi', [('--query-gpu', [
            fakes.response(stdout=fakes.sample_csv(bus_ids, utilization=0)),
            fakes.response(stdout=fakes.sample_csv(
                bus_ids, overrides=overrides))])])


class ReportPathTest(StepTestBase):

    def test_report_name(self):
        self.tools.install_healthy_node()
        command = self.run_step('validate_gpus')
        path = command.command_result['deploy_result']['report']
        self.assertTrue(re.match(
            re.escape(self.log_dir) + r'/validate_gpus-\d{8}T\d{6}Z\.json$',
            path), path)
        self.assertIsInstance(hardware_manager.GpuHardwareManager(),
                              hardware.HardwareManager)
