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

"""Run the NVIDIA tools with a timeout, through IPA's command runner."""

import os
import signal
import subprocess

from oslo_log import log as logging

try:
    from ironic_python_agent import utils as ipa_utils
    from oslo_concurrency import processutils
except ImportError:
    # sovereign-ai gpu-check also runs on hosts without the agent.
    ipa_utils = None
    processutils = None

LOG = logging.getLogger(__name__)


class ToolError(Exception):
    """A tool that is missing, hung or failed; the message names it."""


class ToolMissing(ToolError):
    """A tool that is not installed."""


class ToolTimeout(ToolError):
    """A tool that did not finish within its timeout."""


def _kill_group(process):
    # Each tool runs in its own session (see run), so this also stops the
    # worker processes that gpu_burn and dcgmi start.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        LOG.warning('Process %s of %s did not exit after SIGKILL',
                    process.pid, process.args)


def _execute_plain(argv, timeout, environment, cwd):
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=environment, cwd=cwd,
        start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise
    return (stdout.decode('utf-8', 'replace'),
            stderr.decode('utf-8', 'replace'), process.returncode)


def _execute_ipa(argv, timeout, environment, cwd):
    processes = []
    try:
        stdout, stderr = ipa_utils.execute(
            *argv, timeout=timeout, check_exit_code=False,
            env_variables=environment, cwd=cwd, preexec_fn=os.setsid,
            on_execute=processes.append, log_stdout=False)
    except subprocess.TimeoutExpired:
        # processutils leaves the process running after a timeout.
        if processes:
            _kill_group(processes[0])
        raise
    except processutils.ProcessExecutionError as error:
        raise OSError(str(error))
    return stdout, stderr, processes[0].returncode if processes else None


def run(argv, timeout, env=None, cwd=None):
    """Run ``argv`` (a list, never through a shell) and wait up to timeout.

    The command runs through IPA's ``utils.execute`` when the agent is
    installed, and through subprocess otherwise.

    :param argv: the command and its arguments.
    :param timeout: seconds to wait before the process group is killed.
    :param env: extra environment variables.
    :param cwd: the working directory.
    :returns: (stdout, stderr, exit status).
    :raises: ToolMissing when the executable is not found, ToolTimeout when
        it runs longer than ``timeout``, ToolError when it cannot be started.
    """
    tool = os.path.basename(argv[0])
    environment = None
    if env:
        environment = dict(os.environ)
        environment.update(env)
    execute = _execute_ipa if ipa_utils is not None else _execute_plain

    try:
        stdout, stderr, exit_status = execute(
            argv, timeout, environment, cwd)
    except FileNotFoundError:
        raise ToolMissing('%s was not found: install it in the ramdisk or '
                          'set its path in [sovereign_ai_ironic]' % argv[0])
    except subprocess.TimeoutExpired:
        raise ToolTimeout('%s timed out after %s seconds and was killed'
                          % (tool, timeout))
    except OSError as error:
        raise ToolError('%s could not be run: %s' % (tool, error))

    LOG.debug('%s exited with status %s', ' '.join(argv), exit_status)
    return stdout, stderr, exit_status
