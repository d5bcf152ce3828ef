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

import numpy as np

from sovereign_ai.simulate import generator
from sovereign_ai.simulate import protocol
from sovereign_ai.tests import base
from sovereign_ai.tests.unit.simulate import utils

make_fleet = utils.make_fleet
make_workload = utils.make_workload
replay = utils.replay


class TestTune(base.TestCase):

    def setUp(self):
        super().setUp()
        self.fleet = generator.default_fleet()
        self.workload = generator.default_workload(self.fleet)
        self.capacity = self.fleet.gpu_capacity_milli

    def test_resampled_to_target(self):
        tuned = protocol.tune(self.workload, self.capacity, 42)
        demand = tuned.gpu_demand_milli
        cumulative = np.cumsum(demand)

        self.assertGreater(len(tuned), len(self.workload))
        self.assertGreaterEqual(cumulative[-1], 1.3 * self.capacity)
        self.assertLess(cumulative[-1] - demand.max(), 1.3 * self.capacity)

    def test_resampled_tasks_come_from_workload(self):
        tuned = protocol.tune(self.workload, self.capacity, 42)

        self.assertEqual(set(self.workload.names), set(tuned.names))

    def test_cut_when_above_target(self):
        tuned = protocol.tune(self.workload, self.capacity, 42, ratio=0.5)

        self.assertLess(len(tuned), len(self.workload))
        self.assertLessEqual(tuned.gpu_demand_milli.sum(),
                             0.5 * self.capacity)
        self.assertEqual(len(set(tuned.names)), len(tuned.names))

    def test_seed_decides_order(self):
        first = protocol.tune(self.workload, self.capacity, 42)
        again = protocol.tune(self.workload, self.capacity, 42)
        other = protocol.tune(self.workload, self.capacity, 43)

        self.assertEqual(first.names, again.names)
        self.assertNotEqual(first.names, other.names)


class TestReplay(base.TestCase):

    def test_shares_fill_one_gpu(self):
        fleet = make_fleet(('A10', 1, 32000, 131072))
        workload = make_workload((1000, 1024, 1, 500), (1000, 1024, 1, 300),
                                 (1000, 1024, 1, 200), (1000, 1024, 1, 100))

        result = replay(fleet, workload)

        self.assertEqual([0, 0, 0, -1], list(result.nodes))
        self.assertEqual(1000, result.allocated_milli)
        self.assertEqual(1, result.tasks_failed)

    def test_whole_gpus_on_one_node(self):
        fleet = make_fleet(('T4', 2, 64000, 262144),
                           ('T4', 2, 64000, 262144))
        workload = make_workload((1000, 1024, 1, 1000),
                                 (1000, 1024, 1, 1000),
                                 (1000, 1024, 2, 1000))

        result = replay(fleet, workload)

        # The two single GPUs stack on one node (PCIWeigher), so the pair
        # fits on the other.
        self.assertEqual(result.nodes[0], result.nodes[1])
        self.assertNotEqual(result.nodes[0], result.nodes[2])
        self.assertEqual((0, 1), result.gpus[2])
        self.assertEqual(0, result.tasks_failed)

    def test_dropped_when_fits_nowhere(self):
        fleet = make_fleet(('T4', 4, 64000, 262144))
        workload = make_workload((1000, 1024, 8, 1000), (1000, 1024, 4, 1000))

        result = replay(fleet, workload)

        self.assertEqual([-1, 0], list(result.nodes))
        self.assertEqual(1, result.tasks_failed)
        self.assertEqual(4000, result.allocated_milli)

    def test_memory_is_hard_constraint(self):
        fleet = make_fleet(('T4', 2, 64000, 16384))
        workload = make_workload((1000, 16384, 1, 1000), (1000, 1, 1, 1000))

        result = replay(fleet, workload)

        self.assertEqual([0, -1], list(result.nodes))

    def test_cpu_is_hard_constraint(self):
        fleet = make_fleet(('T4', 2, 8000, 262144))
        workload = make_workload((6000, 1024, 1, 1000), (6000, 1024, 0, 0))

        result = replay(fleet, workload)

        self.assertEqual([0, -1], list(result.nodes))

    def test_gpu_spec_is_hard_constraint(self):
        fleet = make_fleet(('T4', 2, 64000, 262144),
                           ('V100M32', 8, 96000, 393216))
        workload = make_workload((1000, 1024, 1, 1000, ('V100M32',)),
                                 (1000, 1024, 1, 250, ('V100M32',)),
                                 (1000, 1024, 1, 1000, ('P100',)))

        result = replay(fleet, workload)

        self.assertEqual([1, 1, -1], list(result.nodes))

    def test_offered_demand_counts_dropped_tasks(self):
        fleet = make_fleet(('T4', 2, 64000, 262144))
        workload = make_workload((1000, 1024, 4, 1000), (1000, 1024, 1, 1000))

        result = replay(fleet, workload)

        # After 4 GPUs of demand (200%) one GPU of two is allocated.
        self.assertEqual(100.0, result.unallocated_at(0))
        self.assertEqual(100.0, result.unallocated_at(100))
        self.assertEqual(100.0, result.unallocated_at(130))
        self.assertEqual(1000, result.allocated_milli)

    def test_unallocated_curve(self):
        fleet = make_fleet(('V100M32', 8, 96000, 393216))
        workload = make_workload(*[(1000, 1024, 1, 1000)] * 10)

        result = replay(fleet, workload)

        self.assertEqual(100.0, result.unallocated_at(0))
        self.assertEqual(50.0, result.unallocated_at(50))
        self.assertEqual(0.0, result.unallocated_at(100))
        self.assertEqual(0.0, result.unallocated_at(130))
        self.assertEqual(2, result.tasks_failed)

    def test_affinity_violation_counted(self):
        fleet = make_fleet(('V100M32', 8, 96000, 393216))
        # Two singles take GPUs 0 and 1; the 4-GPU task then takes GPUs
        # 2 to 5, which span both NVLink quads (0-3 and 4-7).
        workload = make_workload((1000, 1024, 1, 1000), (1000, 1024, 1, 1000),
                                 (1000, 1024, 4, 1000))

        result = replay(fleet, workload, affinity='nvlink')

        self.assertEqual((2, 3, 4, 5), result.gpus[2])
        self.assertEqual(1, result.affinity_violations)
