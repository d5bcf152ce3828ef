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

"""Collect the GPU inventory that validate_gpus checks, and run the checks.

Each tool call goes through a :class:`Collector`, which keeps the raw
output for the report and applies the configured timeout.
"""

import time

from oslo_config import cfg
from oslo_log import log as logging

from sovereign_ai import conf  # noqa: F401  (registers the options)
from sovereign_ai.gpu.nvidia import common
from sovereign_ai.gpu.nvidia import nvlink as nvlink_parser
from sovereign_ai.gpu.nvidia import smi_text
from sovereign_ai.gpu.nvidia import smi_xml
from sovereign_ai.gpu.nvidia import topo as topo_parser
from sovereign_ai.gpu.nvidia import xid as xid_parser
from sovereign_ai.ironic import checks
from sovereign_ai.ironic import sysfs
from sovereign_ai.ironic import tools

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

# nvidia-smi exit statuses that still come with valid output: 14 reports
# an infoROM warning after the normal output.
SMI_USABLE_EXIT_STATUSES = (0, 14)


class Collector:
    """Run tools with a timeout and keep their raw output for the report."""

    def __init__(self, timeout=None):
        self.timeout = timeout or CONF.sovereign_ai_ironic.command_timeout
        self.raw = {}
        self.commands = []

    def run(self, name, argv, timeout=None, env=None, cwd=None):
        """Run ``argv`` and store its output under ``name``.

        :returns: (stdout, stderr, exit status).
        :raises: tools.ToolError (missing, timed out or not startable).
        """
        timeout = timeout or self.timeout
        started = time.monotonic()
        entry = {'name': name, 'argv': list(argv), 'timeout': timeout}
        self.commands.append(entry)
        try:
            stdout, stderr, status = tools.run(argv, timeout, env=env,
                                               cwd=cwd)
        except tools.ToolError as error:
            entry['error'] = str(error)
            raise
        finally:
            entry['seconds'] = round(time.monotonic() - started, 3)
        entry['exit_status'] = status
        self.raw['%s.stdout' % name] = stdout
        if stderr:
            self.raw['%s.stderr' % name] = stderr
        return stdout, stderr, status


def smi_argv(*arguments):
    """Return the nvidia-smi command line with ``arguments``."""
    return [CONF.sovereign_ai_ironic.nvidia_smi_command] + list(arguments)


def query_gpus(collector):
    """Run the nvidia-smi query and parse it.

    :returns: (parsed query, infoROM warning bus ids, exit status).
    :raises: tools.ToolError when nvidia-smi fails, common.ParseError when
        its output cannot be read.
    """
    if CONF.sovereign_ai_ironic.query_format == 'text':
        argv, parser, source = smi_argv('-q'), smi_text.parse, 'nvidia-smi -q'
    else:
        argv, parser, source = (smi_argv('-q', '-x'), smi_xml.parse,
                                'nvidia-smi -q -x')
    stdout, stderr, status = collector.run('nvidia-smi-q', argv)
    if status not in SMI_USABLE_EXIT_STATUSES:
        raise tools.ToolError(
            '%s exited with status %s: %s'
            % (source, status, (stderr or stdout).strip()[:200]))
    # The infoROM warning follows the XML document or the text output.
    document = stdout
    if parser is smi_xml.parse and '</nvidia_smi_log>' in stdout:
        document = stdout[:stdout.rindex('</nvidia_smi_log>') + 17]
    query = parser(document, source=source)
    warnings = smi_text.parse_inforom_warnings(stdout + '\n' + stderr)
    return query, warnings, status


def read_nvlink(collector):
    """Return the parsed ``nvidia-smi nvlink -s`` output, or None.

    nvidia-smi prints nothing for GPUs without NVLink, and an error on some
    drivers; both mean there is nothing to check.
    """
    stdout, stderr, status = collector.run(
        'nvidia-smi-nvlink', smi_argv('nvlink', '-s'))
    if not stdout.strip():
        return None
    if status != 0 and 'all links are inactive' not in stdout + stderr:
        LOG.warning('nvidia-smi nvlink -s exited with status %s; NVLink is '
                    'not checked: %s', status, stderr.strip()[:200])
        return None
    return nvlink_parser.parse(stdout)


def read_topology(collector):
    """Return the parsed ``nvidia-smi topo -m`` matrix, or None on failure.

    The matrix is recorded in the report only; no check depends on it.
    """
    try:
        stdout, _stderr, status = collector.run(
            'nvidia-smi-topo', smi_argv('topo', '-m'))
        if status != 0:
            return None
        return topo_parser.parse(stdout)
    except (tools.ToolError, common.ParseError) as error:
        LOG.warning('The GPU topology is not recorded: %s', error)
        return None


def read_xids(collector, name='dmesg'):
    """Return the Xid events in the kernel log.

    :raises: tools.ToolError when dmesg cannot be run.
    """
    stdout, stderr, status = collector.run(
        name, [CONF.sovereign_ai_ironic.dmesg_command])
    if status != 0:
        raise tools.ToolError('dmesg exited with status %s: %s'
                              % (status, stderr.strip()[:200]))
    return xid_parser.parse(stdout)


def collect(collector, sysfs_root='/sys', proc_root='/proc'):
    """Collect everything validate_gpus checks; see checks.validate."""
    query, warnings, status = query_gpus(collector)
    nvswitches = sysfs.list_nvswitches(sysfs_root)
    return {
        'query': query,
        'inforom_warnings': warnings,
        'smi_exit_status': status,
        'nvlink': read_nvlink(collector),
        'topology': read_topology(collector),
        'xids': read_xids(collector),
        'nvswitch_count': len(nvswitches),
        'fabric_manager_running': (
            bool(nvswitches) and sysfs.fabric_manager_running(proc_root)),
        'sysfs_gpu_count': len(sysfs.list_gpus(sysfs_root)) or None,
    }


def run(collector, settings, sysfs_root='/sys', proc_root='/proc'):
    """Collect the inventory and check it.

    :returns: (inventory, findings).
    """
    inventory = collect(collector, sysfs_root, proc_root)
    findings = checks.validate(inventory, settings)
    return inventory, findings
