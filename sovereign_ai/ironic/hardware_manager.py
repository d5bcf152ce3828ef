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

"""IPA hardware manager that validates and burns in NVIDIA GPUs.

It offers two steps, each as a deploy step (priority 0, so a deploy
template turns it on), a manual clean step and a service step:

* ``validate_gpus`` checks the driver and the health counters of every GPU.
* ``burnin_gpus`` runs DCGM diagnostics or gpu-burn while sampling the GPUs.

A failed step raises the IPA error of the running step kind, whose text
becomes the node's ``last_error``. The full report and raw tool output go
under ``[sovereign_ai_ironic] log_dir``, which :meth:`collect_system_logs`
adds to the ramdisk logs.
"""

import os

# IPA's modules read options at import time, so its config module, which
# registers them, comes first (the agent imports it first too).
from ironic_python_agent import config  # noqa: F401
from ironic_python_agent import errors
from ironic_python_agent import hardware
from oslo_config import cfg
from oslo_log import log as logging

from sovereign_ai import conf  # noqa: F401  (registers the options)
from sovereign_ai.ironic import args
from sovereign_ai.ironic import checks
from sovereign_ai.ironic import report
from sovereign_ai.ironic import steps
from sovereign_ai.ironic import sysfs

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

_SERVICE_STATES = ('servicing', 'service wait', 'service failed')
_CLEAN_STATES = ('cleaning', 'clean wait', 'clean failed')


def error_class(node):
    """Return the IPA error class of the step kind that is running.

    Ironic sets ``service_step``, ``clean_step`` or ``deploy_step`` on the
    node while it runs a step of that kind; the provision state is the
    fallback. Deployment is the default.
    """
    node = node or {}
    if node.get('service_step'):
        return errors.ServicingError
    if node.get('clean_step'):
        return errors.CleaningError
    if node.get('deploy_step'):
        return errors.DeploymentError
    state = node.get('provision_state')
    if state in _SERVICE_STATES:
        return errors.ServicingError
    if state in _CLEAN_STATES:
        return errors.CleaningError
    return errors.DeploymentError


def _step(name, specs, interface='deploy', abortable=None):
    step = {
        'step': name,
        'priority': 0,
        'interface': interface,
        'reboot_requested': False,
        'argsinfo': args.argsinfo(specs),
    }
    if abortable is not None:
        step['abortable'] = abortable
    return step


class GpuHardwareManager(hardware.HardwareManager):
    """Validate and burn in NVIDIA GPUs."""

    HARDWARE_MANAGER_NAME = 'sovereign_ai_gpu'
    # Bump on every change of the steps or their arguments: Ironic
    # restarts cleaning or deployment when the version changes mid-way.
    # 1.0: validate_gpus and burnin_gpus as deploy, clean and service steps.
    HARDWARE_MANAGER_VERSION = '1.0'

    #: Root of the sysfs tree searched for GPUs; tests point it elsewhere.
    sysfs_root = '/sys'
    #: Root of the procfs tree searched for the fabric manager.
    proc_root = '/proc'

    def evaluate_hardware_support(self):
        """Return SERVICE_PROVIDER when an NVIDIA GPU is on the PCI bus."""
        gpus = sysfs.list_gpus(self.sysfs_root)
        if not gpus:
            LOG.debug('No NVIDIA GPU on the PCI bus under %s',
                      self.sysfs_root)
            return hardware.HardwareSupport.NONE
        LOG.info('Found %d NVIDIA GPU(s): %s', len(gpus), ', '.join(gpus))
        return hardware.HardwareSupport.SERVICE_PROVIDER

    def get_deploy_steps(self, node, ports):
        return [_step(steps.VALIDATE, args.VALIDATE_ARGS),
                _step(steps.BURNIN, args.BURNIN_ARGS)]

    def get_clean_steps(self, node, ports):
        return [_step(steps.VALIDATE, args.VALIDATE_ARGS, abortable=True),
                _step(steps.BURNIN, args.BURNIN_ARGS, abortable=True)]

    def get_service_steps(self, node, ports):
        return self.get_clean_steps(node, ports)

    def validate_gpus(self, node, ports, **kwargs):
        """Check the NVIDIA driver and the health of every GPU.

        :raises: DeploymentError, CleaningError or ServicingError (the kind
            of the running step) naming each failing GPU.
        :returns: a summary with the fault and warning counts and the path
            of the full report.
        """
        settings = self._resolve(node, args.VALIDATE_ARGS, kwargs,
                                 steps.VALIDATE)
        result = steps.validate(settings, self.sysfs_root, self.proc_root)
        return self._finish(node, result)

    def burnin_gpus(self, node, ports, **kwargs):
        """Stress every GPU and fail on errors, slowdown or low throughput.

        :raises: DeploymentError, CleaningError or ServicingError (the kind
            of the running step) naming each failing GPU.
        :returns: a summary with the throughput of each GPU and the path of
            the full report.
        """
        settings = self._resolve(node, args.BURNIN_ARGS, kwargs,
                                 steps.BURNIN)
        result = steps.burn_in(settings)
        extra = {
            'backend': result.data.get('backend'),
            'throughput_gflops': result.data.get('throughput_gflops'),
        }
        return self._finish(node, result, extra)

    def collect_system_logs(self, io_dict, file_list):
        """Add the step reports and raw tool output to the ramdisk logs."""
        log_dir = CONF.sovereign_ai_ironic.log_dir
        if os.path.isdir(log_dir):
            file_list.append(log_dir)

    def _resolve(self, node, specs, requested, step):
        try:
            return args.resolve(specs, requested, node)
        except args.InvalidArgument as error:
            LOG.error('%s rejected its arguments: %s', step, error)
            raise error_class(node)('%s: %s' % (step, error))

    def _finish(self, node, result, extra=None):
        path = report.write(CONF.sovereign_ai_ironic.log_dir, result.step,
                            result.report, result.raw)
        for entry in result.findings:
            if entry['severity'] != checks.WARNING:
                continue
            if entry['gpu'] is None:
                LOG.warning('%s: %s', result.step, entry['message'])
            else:
                LOG.warning('%s: GPU %s (%s): %s', result.step, entry['gpu'],
                            entry['bus_id'], entry['message'])
        if result.failed:
            summary = result.summary(path)
            LOG.error('%s on node %s: %s', result.step,
                      (node or {}).get('uuid'), summary)
            raise error_class(node)(summary)
        LOG.info('%s passed on %s GPU(s); report: %s', result.step,
                 result.gpu_count, path)
        return report.compact(result.step, result.findings,
                              result.gpu_count, path, extra)
