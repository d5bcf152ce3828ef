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

"""The simulate command end to end, through sovereign_ai.cmd.main."""

import csv
import json
import os

import fixtures

from sovereign_ai.tests import base
from sovereign_ai.tests.unit.simulate import test_trace

POLICIES = ['nova-default', 'sovereign', 'best-fit', 'fgd']
MEAN_SD_FIELDS = ('unallocated_gpu_pct_at_100', 'unallocated_gpu_pct_at_130',
                  'affinity_violations', 'tasks_failed')


class TestEmbeddedRun(base.TestCase):

    def test_table(self):
        status, stdout, stderr = test_trace.simulate('--seeds', '2')

        self.assertEqual(0, status, stderr)
        self.assertIn('embedded-fleet (162 GPU nodes, 804 GPUs)', stdout)
        self.assertIn('2 seeds (42, 43)', stdout)
        lines = stdout.splitlines()
        header = [line for line in lines if line.startswith('policy')]
        self.assertEqual(1, len(header))
        rows = lines[lines.index(header[0]) + 1:]
        self.assertEqual(POLICIES, [row.split()[0] for row in rows])

    def test_json_schema(self):
        status, stdout, stderr = test_trace.simulate(
            '--seeds', '2', '--format', 'json')

        self.assertEqual(0, status, stderr)
        report = json.loads(stdout)
        self.assertEqual('embedded-workload', report['trace'])
        self.assertEqual('fast', report['engine'])
        self.assertEqual([42, 43], report['seed_values'])
        self.assertEqual(POLICIES,
                         [item['policy'] for item in report['results']])
        for item in report['results']:
            self.assertEqual('embedded-workload', item['trace'])
            self.assertEqual(2, item['seeds'])
            for field in MEAN_SD_FIELDS:
                self.assertEqual({'mean', 'sd'}, set(item[field]), field)
                self.assertIsInstance(item[field]['mean'], float)
                self.assertGreaterEqual(item[field]['sd'], 0.0)
            curve = item['unallocated_gpu_pct_by_demand']
            self.assertEqual(131, len(curve))
            self.assertEqual(100.0, curve[0])
            self.assertEqual(item['unallocated_gpu_pct_at_100']['mean'],
                             curve[100])
            self.assertEqual(0.0, item['affinity_violations']['mean'])

    def test_selected_policies(self):
        status, stdout, stderr = test_trace.simulate(
            '--seeds', '1', '--format', 'json', '--policy', 'fgd',
            '--policy', 'best-fit')

        self.assertEqual(0, status, stderr)
        self.assertEqual(['fgd', 'best-fit'],
                         [item['policy']
                          for item in json.loads(stdout)['results']])

    def test_fleet_and_trace_files(self):
        status, stdout, stderr = test_trace.simulate(
            '--seeds', '1', '--format', 'json',
            '--fleet', test_trace.fixture('fleet.csv'),
            '--trace', test_trace.fixture('tasks.csv'))

        self.assertEqual(0, status, stderr)
        report = json.loads(stdout)
        self.assertEqual('fleet', report['fleet'])
        self.assertEqual(10, report['fleet_gpus'])
        self.assertEqual('tasks', report['trace'])

    def test_nova_engine(self):
        status, stdout, stderr = test_trace.simulate(
            '--seeds', '1', '--format', 'json', '--engine', 'nova',
            '--fleet', test_trace.fixture('fleet.csv'),
            '--trace', test_trace.fixture('tasks.csv'))

        self.assertEqual(0, status, stderr)
        report = json.loads(stdout)
        self.assertEqual('nova', report['engine'])
        self.assertEqual(POLICIES,
                         [item['policy'] for item in report['results']])

    def test_plot(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest('matplotlib is not installed; it is in the plot '
                          'extra.')
        folder = self.useFixture(fixtures.TempDir()).path
        chart = os.path.join(folder, 'chart.png')

        status, _stdout, stderr = test_trace.simulate(
            '--seeds', '1', '--plot', chart)

        self.assertEqual(0, status, stderr)
        with open(chart, 'rb') as handle:
            self.assertEqual(b'\x89PNG', handle.read(4))


class TestRealTrace(base.TestCase):
    """A small slice of the public Alibaba trace through the command."""

    def _slice(self, source, target, keep):
        with open(source, newline='') as handle:
            rows = list(csv.reader(handle))
        with open(target, 'w', newline='') as handle:
            writer = csv.writer(handle)
            writer.writerow(rows[0])
            writer.writerows(row for index, row in enumerate(rows[1:])
                             if keep(index))

    def test_sample(self):
        fleet_path = base.skip_unless_shared(
            self, 'traces', 'openb', 'openb_node_list_gpu_node.csv')
        trace_path = base.skip_unless_shared(
            self, 'traces', 'openb', 'openb_pod_list_default.csv')
        folder = self.useFixture(fixtures.TempDir()).path
        fleet = os.path.join(folder, 'fleet.csv')
        tasks = os.path.join(folder, 'tasks.csv')
        # 41 of the 1213 nodes (all models) and 400 of the 8152 tasks.
        self._slice(fleet_path, fleet, lambda index: index % 30 == 0)
        self._slice(trace_path, tasks, lambda index: index % 20 == 0)

        status, stdout, stderr = test_trace.simulate(
            '--seeds', '2', '--format', 'json', '--fleet', fleet,
            '--trace', tasks)

        self.assertEqual(0, status, stderr)
        results = {item['policy']: item
                   for item in json.loads(stdout)['results']}
        self.assertEqual(set(POLICIES), set(results))
        for item in results.values():
            value = item['unallocated_gpu_pct_at_100']['mean']
            self.assertGreater(value, 0.0)
            self.assertLess(value, 50.0)
        self.assertLess(results['fgd']['unallocated_gpu_pct_at_100']['mean'],
                        results['nova-default']['unallocated_gpu_pct_at_100']
                        ['mean'])
