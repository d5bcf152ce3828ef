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

"""Run validate_gpus and burnin_gpus and build their reports.

Both the IPA hardware manager and ``sovereign-ai gpu-check`` use these
functions; they raise no IPA error themselves.
"""

from sovereign_ai.gpu.nvidia import common
from sovereign_ai.ironic import burnin
from sovereign_ai.ironic import checks
from sovereign_ai.ironic import report
from sovereign_ai.ironic import tools
from sovereign_ai.ironic import validation

VALIDATE = 'validate_gpus'
BURNIN = 'burnin_gpus'


class StepResult:
    """The outcome of one step run.

    :ivar report: the JSON-serialisable report.
    :ivar raw: tool output by name.
    :ivar findings: the list of findings.
    :ivar error: the message of a tool failure that stopped the step, or
        None.
    :ivar gpu_count: the number of GPUs nvidia-smi lists, or None.
    """

    def __init__(self, step, settings):
        self.step = step
        self.settings = settings
        self.collector = validation.Collector()
        self.started_at = report.timestamp()
        self.findings = []
        self.data = {}
        self.error = None
        self.gpu_count = None

    @property
    def raw(self):
        return self.collector.raw

    @property
    def faults(self):
        return [entry for entry in self.findings
                if entry['severity'] == checks.FAULT]

    @property
    def failed(self):
        return bool(self.error or self.faults)

    @property
    def report(self):
        return {
            'step': self.step,
            'started_at': self.started_at,
            'finished_at': report.timestamp(),
            'arguments': self.settings,
            'gpu_count': self.gpu_count,
            'error': self.error,
            'findings': self.findings,
            'data': self.data,
            'commands': self.collector.commands,
        }

    def summary(self, report_path):
        """Return the text that becomes the node's last_error."""
        if self.error:
            return '%s failed: %s. Report: %s' % (
                self.step, self.error,
                report_path or 'not written (see the agent log)')
        return report.summarize(self.step, self.findings, self.gpu_count,
                                report_path)


def validate(settings, sysfs_root='/sys', proc_root='/proc'):
    """Run validate_gpus with resolved settings; return a StepResult."""
    result = StepResult(VALIDATE, settings)
    try:
        inventory, result.findings = validation.run(
            result.collector, settings, sysfs_root, proc_root)
        result.data = inventory
        result.gpu_count = len(inventory['query']['gpus'])
    except (tools.ToolError, common.ParseError) as error:
        result.error = str(error)
    return result


def burn_in(settings):
    """Run burnin_gpus with resolved settings; return a StepResult."""
    result = StepResult(BURNIN, settings)
    try:
        result.data, result.findings = burnin.run(result.collector, settings)
        result.gpu_count = result.data['gpu_count']
    except (tools.ToolError, common.ParseError) as error:
        result.error = str(error)
    return result
