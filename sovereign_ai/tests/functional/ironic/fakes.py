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

"""Fake NVIDIA tools for the tests: small scripts placed first on PATH.

Each fake replays fixture files, prints text, sleeps (to hang) and exits
with a given status, chosen by a prefix of its arguments (or, for a rule
that starts with ``*``, by a substring). Successive calls
that match the same rule step through its responses; the last one repeats.
Every call is appended to calls.jsonl with its arguments, working
directory and CUDA_DEVICE_ORDER.
"""

import json
import os
import sys

import fixtures

from sovereign_ai.tests import base

H100_BUS_IDS = ('00000000:19:00.0', '00000000:3B:00.0', '00000000:4C:00.0',
                '00000000:5D:00.0', '00000000:9B:00.0', '00000000:BB:00.0',
                '00000000:CB:00.0', '00000000:DB:00.0')

H100_QUERY = 'nvidia-smi-q_8x-h100-80gb-hbm3_535.161.08.txt'

_SCRIPT = '''#!%(python)s
import json, os, sys, time
NAME = %(name)r
RULES = json.loads(%(rules)r)
STATE = %(state)r
joined = ' '.join(sys.argv[1:])
with open(os.path.join(STATE, 'calls.jsonl'), 'a') as log:
    log.write(json.dumps({'tool': NAME, 'argv': sys.argv[1:],
                          'cwd': os.getcwd(),
                          'cuda_device_order':
                              os.environ.get('CUDA_DEVICE_ORDER')}) + '\\n')
for number, rule in enumerate(RULES):
    match = rule['match']
    if match.startswith('*') and match[1:] in joined:
        break
    if not match.startswith('*') and joined.startswith(match):
        break
else:
    sys.stderr.write('%%s: unexpected arguments: %%s\\n' %% (NAME, joined))
    sys.exit(2)
counter = os.path.join(STATE, '%%s-%%d.count' %% (NAME, number))
calls = int(open(counter).read()) if os.path.exists(counter) else 0
with open(counter, 'w') as handle:
    handle.write(str(calls + 1))
responses = rule['responses']
response = responses[min(calls, len(responses) - 1)]
time.sleep(response.get('sleep', 0))
for path in response.get('files', []):
    with open(path) as handle:
        sys.stdout.write(handle.read())
sys.stdout.write(response.get('stdout', ''))
sys.stdout.flush()
sys.stderr.write(response.get('stderr', ''))
sys.exit(response.get('exit', 0))
'''


def fixture(name):
    """Return the path of a repository fixture under fixtures/gpu."""
    return base.fixture_path('gpu', name)


def response(*files, stdout='', stderr='', exit=0, sleep=0):
    """Build one response of a fake tool."""
    return {'files': [fixture(name) for name in files], 'stdout': stdout,
            'stderr': stderr, 'exit': exit, 'sleep': sleep}


def sample_csv(bus_ids=H100_BUS_IDS, utilization=100, temperature=61,
               gen=5, width=16, ecc=0, active=(), overrides=None):
    """Return nvidia-smi --query-gpu CSV with the burn-in sample fields.

    ``active`` lists the clocks event reasons shown as Active;
    ``overrides`` maps a GPU index to a dict of field values that differ.
    """
    header = ('index, pci.bus_id, serial, temperature.gpu, power.draw [W], '
              'utilization.gpu [%], clocks.sm [MHz], '
              'clocks_throttle_reasons.hw_slowdown, '
              'clocks_throttle_reasons.hw_thermal_slowdown, '
              'clocks_throttle_reasons.hw_power_brake_slowdown, '
              'clocks_throttle_reasons.sw_thermal_slowdown, '
              'clocks_throttle_reasons.sw_power_cap, '
              'ecc.errors.uncorrected.volatile.total, '
              'pcie.link.gen.current, pcie.link.gen.max, '
              'pcie.link.width.current, pcie.link.width.max')
    reasons = ('hw_slowdown', 'hw_thermal_slowdown',
               'hw_power_brake_slowdown', 'sw_thermal_slowdown',
               'sw_power_cap')
    lines = [header]
    for index, bus_id in enumerate(bus_ids):
        values = {'temperature': temperature, 'utilization': utilization,
                  'gen': gen, 'width': width, 'ecc': ecc,
                  'active': active}
        values.update((overrides or {}).get(index, {}))
        flags = ['Active' if reason in values['active'] else 'Not Active'
                 for reason in reasons]
        cells = [str(index), bus_id, '%013d' % (index + 1),
                 str(values['temperature']), '650.12 W',
                 '%d %%' % values['utilization'], '1980 MHz']
        cells += flags
        cells += [str(values['ecc']), str(values['gen']), '5',
                  str(values['width']), '16']
        lines.append(', '.join(cells))
    return '\n'.join(lines) + '\n'


class FakeTools(fixtures.Fixture):
    """Install fake tools in a temporary directory first on PATH."""

    def _setUp(self):
        self.root = self.useFixture(fixtures.TempDir()).path
        self.bin = os.path.join(self.root, 'bin')
        self.state = os.path.join(self.root, 'state')
        os.makedirs(self.bin)
        os.makedirs(self.state)
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', self.bin + os.pathsep + os.environ.get('PATH', '')))

    def add(self, name, rules):
        """Install tool ``name``: rules is a list of (prefix, responses)."""
        encoded = json.dumps([{'match': match, 'responses': responses}
                              for match, responses in rules])
        path = os.path.join(self.bin, name)
        with open(path, 'w') as handle:
            handle.write(_SCRIPT % {'python': sys.executable, 'name': name,
                                    'rules': encoded, 'state': self.state})
        os.chmod(path, 0o755)
        return path

    def remove(self, name):
        os.unlink(os.path.join(self.bin, name))

    def calls(self, name=None):
        """Return the recorded calls, optionally of one tool only."""
        path = os.path.join(self.state, 'calls.jsonl')
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            entries = [json.loads(line) for line in handle if line.strip()]
        return [entry for entry in entries
                if name is None or entry['tool'] == name]

    def install_healthy_node(self):
        """Install nvidia-smi and dmesg of the healthy 8x H100 capture."""
        self.add('nvidia-smi', [
            ('-q', [response(H100_QUERY)]),
            ('nvlink -s', [response(
                'nvidia-smi-nvlink-s_8x-a100-sxm4-80gb_all-up.txt')]),
            ('topo -m', [response('nvidia-smi-topo-m_2gpu_constructed.txt')]),
            ('--query-gpu', [response(stdout=sample_csv(utilization=0)),
                             response(stdout=sample_csv())]),
        ])
        self.add('dmesg', [('', [response(
            stdout='[    0.000000] Linux version 6.1.0\n')])])


def write_sysfs(root, gpu_count=8, nvswitch_count=4):
    """Write a fake sysfs PCI tree with NVIDIA GPUs and NVSwitches.

    The test machine has no GPU, so GPU presence comes from this tree.
    """
    devices = [('0000:%02x:00.0' % (0x19 + index), '0x030200')
               for index in range(gpu_count)]
    devices += [('0000:%02x:00.0' % (0x05 + index), '0x068000')
                for index in range(nvswitch_count)]
    for address, pci_class in devices:
        path = os.path.join(root, 'bus', 'pci', 'devices', address)
        os.makedirs(path)
        for name, value in (('vendor', '0x10de'), ('class', pci_class)):
            with open(os.path.join(path, name), 'w') as handle:
                handle.write(value + '\n')


def write_proc(root, running=True):
    """Write a fake procfs with (or without) the fabric manager process."""
    path = os.path.join(root, '1234')
    os.makedirs(path)
    with open(os.path.join(path, 'comm'), 'w') as handle:
        handle.write('nv-fabricmanager\n' if running else 'sshd\n')
