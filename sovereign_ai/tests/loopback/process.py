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

"""Start, track and stop the processes of the loopback cloud.

Each service runs in its own session (process group), with its output in
``<state>/log/<name>.log`` and its process id in ``<state>/run/<name>.pid``.
Stopping signals the whole group, so gunicorn workers go with their
arbiter. The pid file also stores the process start time, and only a
process with that pid and start time is signalled: a pid that the kernel
reused for another program is left alone.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class ServiceError(Exception):
    """A service of the loopback cloud failed to start or stop."""


def pid_file(state_dir, name):
    return os.path.join(state_dir, 'run', '%s.pid' % name)


def log_file(state_dir, name):
    return os.path.join(state_dir, 'log', '%s.log' % name)


def start(state_dir, name, argv, env=None, cwd=None):
    """Start ``argv`` in the background as service ``name``; return its pid."""
    os.makedirs(os.path.join(state_dir, 'run'), exist_ok=True)
    os.makedirs(os.path.join(state_dir, 'log'), exist_ok=True)

    full_env = dict(os.environ)
    full_env.update(env or {})

    with open(log_file(state_dir, name), 'ab') as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=full_env, cwd=cwd or state_dir, start_new_session=True)

    with open(pid_file(state_dir, name), 'w') as f:
        f.write('%d %s\n' % (proc.pid, _start_time(proc.pid)))
    return proc.pid


def _start_time(pid):
    """Return the start time of ``pid`` in clock ticks since boot, or None.

    A zombie counts as not running, so it returns None too.
    """
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return None

    # The command name in field 2 may contain spaces; fields after it
    # are plain numbers and letters.
    fields = stat.rsplit(')', 1)[1].split()
    if fields[0] in ('Z', 'X'):
        return None
    return fields[19]


def _read_pid_file(state_dir, name):
    try:
        with open(pid_file(state_dir, name)) as f:
            pid, start_time = f.read().split()
        return int(pid), start_time
    except (OSError, ValueError):
        return None, None


def is_running(state_dir, name):
    """Return the pid of service ``name`` when it runs, else None."""
    pid, start_time = _read_pid_file(state_dir, name)
    if pid is None or _start_time(pid) != start_time:
        return None
    return pid


def services(state_dir):
    """Return the names of the services with a pid file, sorted."""
    run_dir = os.path.join(state_dir, 'run')
    if not os.path.isdir(run_dir):
        return []
    return sorted(name[:-len('.pid')] for name in os.listdir(run_dir)
                  if name.endswith('.pid'))


def stop(state_dir, name, timeout=20.0):
    """Stop service ``name`` and its process group; return True if it ran."""
    pid = is_running(state_dir, name)
    if pid is None:
        _remove(pid_file(state_dir, name))
        return False

    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)

    if _group_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.5)

    _remove(pid_file(state_dir, name))
    return True


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False

    # Reap the leader if it is our own child, so it does not linger as a
    # zombie that still counts as a member of the group.
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def rss_kib(pid):
    """Return the resident set size of ``pid`` and its group, in KiB."""
    total = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pid:
                continue
            with open('/proc/%s/status' % entry) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def port_open(port, host='127.0.0.1'):
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_http(url, name, state_dir, timeout=120.0):
    """Wait until ``url`` returns any HTTP status below 500.

    :raises ServiceError: when the service exits or the timeout passes;
        the message names the log file to read.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running(state_dir, name) is None:
            raise ServiceError(
                '%s exited during start-up; see %s.'
                % (name, log_file(state_dir, name)))
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)

    raise ServiceError('%s did not answer on %s within %d s; see %s.'
                       % (name, url, timeout, log_file(state_dir, name)))
