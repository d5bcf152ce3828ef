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

import contextlib
import io
import os
import tempfile

from sovereign_ai.cmd import main
from sovereign_ai.simulate import gpu_models
from sovereign_ai.simulate import trace
from sovereign_ai.tests import base


def simulate(*arguments):
    """Run ``sovereign-ai simulate``; return (status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout):
        with contextlib.redirect_stderr(stderr):
            status = main.main(
                ['simulate', '--jobs', '1'] + list(arguments))
    return status, stdout.getvalue(), stderr.getvalue()


def fixture(*parts):
    return base.fixture_path('simulate', *parts)


class TestReadFleet(base.TestCase):

    def test_gpu_nodes(self):
        fleet = trace.read_fleet(fixture('fleet.csv'))

        self.assertEqual(['node-t4', 'node-v100'], fleet.hosts)
        self.assertEqual([64000, 96000], list(fleet.cpu_milli))
        self.assertEqual([262144, 393216], list(fleet.memory_mib))
        self.assertEqual([2, 8], list(fleet.gpu_count))
        self.assertEqual(['T4', 'V100M32'],
                         [fleet.model_name(node) for node in range(2)])
        self.assertEqual(10000, fleet.gpu_capacity_milli)

    def test_byte_order_mark(self):
        # Spreadsheet programs often save CSV files with a UTF-8 BOM.
        with open(fixture('fleet.csv'), encoding='utf-8') as source:
            content = source.read()
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'fleet_bom.csv')
            with open(path, 'w', encoding='utf-8-sig', newline='') as copy:
                copy.write(content.replace('\n', '\r\n'))

            fleet = trace.read_fleet(path)

        self.assertEqual(['node-t4', 'node-v100'], fleet.hosts)

    def test_cpu_node_skipped(self):
        fleet = trace.read_fleet(fixture('fleet.csv'))

        self.assertEqual(1, fleet.skipped_cpu_nodes)
        self.assertNotIn('node-cpu', fleet.hosts)


class TestReadWorkload(base.TestCase):

    def test_columns(self):
        workload = trace.read_workload(fixture('tasks.csv'))

        self.assertEqual(['pod-share', 'pod-one', 'pod-two', 'pod-cpu'],
                         workload.names)
        self.assertEqual([1, 1, 2, 0], list(workload.num_gpu))
        self.assertEqual([500, 1000, 1000, 0], list(workload.gpu_milli))
        self.assertEqual([500, 1000, 2000, 0],
                         list(workload.gpu_demand_milli))

    def test_gpu_spec(self):
        workload = trace.read_workload(fixture('tasks.csv'))
        v100 = (1 << gpu_models.MODEL_NAMES.index('V100M16')
                | 1 << gpu_models.MODEL_NAMES.index('V100M32'))

        self.assertEqual([0, 0, v100, 0], list(workload.spec_mask))

    def test_optional_columns_absent(self):
        workload = trace.read_workload(fixture('tasks_multigpu.csv'))

        self.assertEqual([0, 0, 0], list(workload.spec_mask))
        self.assertEqual([1, 1, 4], list(workload.num_gpu))


class TestBadInput(base.TestCase):
    """Each kind of bad input ends the command with one line and status 2."""

    def assertRejected(self, arguments, *fragments):
        status, stdout, stderr = simulate(*arguments)

        self.assertEqual(2, status)
        self.assertEqual('', stdout)
        self.assertEqual(1, len(stderr.splitlines()), stderr)
        self.assertTrue(stderr.startswith('sovereign-ai: error: '), stderr)
        self.assertNotIn('Traceback', stderr)
        for fragment in fragments:
            self.assertIn(fragment, stderr)

    def test_missing_column(self):
        self.assertRejected(['--fleet', fixture('fleet_missing_column.csv')],
                            'fleet_missing_column.csv', 'missing column gpu')

    def test_unknown_model(self):
        self.assertRejected(['--fleet', fixture('fleet_unknown_model.csv')],
                            'fleet_unknown_model.csv', 'line 3',
                            'field model', "unknown GPU model 'H100X'")

    def test_duplicate_node(self):
        self.assertRejected(['--fleet', fixture('fleet_duplicate.csv')],
                            'fleet_duplicate.csv', 'line 3', 'field sn',
                            "duplicate node name 'node-a'", 'line 2')

    def test_unknown_spec_model(self):
        self.assertRejected(['--trace', fixture('tasks_unknown_spec.csv')],
                            'tasks_unknown_spec.csv', 'line 2',
                            'field gpu_spec', "'B200'")

    def test_negative_gpu_count(self):
        self.assertRejected(['--fleet', fixture('fleet_negative.csv')],
                            'fleet_negative.csv', 'line 2', 'field gpu',
                            "'-2'")

    def test_negative_cpu(self):
        self.assertRejected(['--trace', fixture('tasks_negative.csv')],
                            'tasks_negative.csv', 'line 2',
                            'field cpu_milli', "'-12000'")

    def test_non_numeric(self):
        self.assertRejected(['--trace', fixture('tasks_non_numeric.csv')],
                            'tasks_non_numeric.csv', 'line 3',
                            'field memory_mib', "'lots'")

    def test_share_of_many_gpus(self):
        self.assertRejected(['--trace', fixture('tasks_bad_share.csv')],
                            'tasks_bad_share.csv', 'line 2',
                            'field gpu_milli')

    def test_empty_file(self):
        self.assertRejected(['--trace', fixture('empty.csv')],
                            'empty.csv', 'the file is empty')

    def test_header_only(self):
        self.assertRejected(['--trace', fixture('tasks_header_only.csv')],
                            'tasks_header_only.csv', 'no data rows')

    def test_missing_file(self):
        self.assertRejected(['--fleet', fixture('absent.csv')],
                            'absent.csv', 'file not found')

    def test_invalid_seeds(self):
        self.assertRejected(['--seeds', '0'], '--seeds 0')

    def test_invalid_tune(self):
        self.assertRejected(['--tune', '1.0'], '--tune 1.0')

    def test_plot_folder_missing(self):
        self.assertRejected(['--plot', fixture('absent', 'chart.png')],
                            'folder', 'not found')
