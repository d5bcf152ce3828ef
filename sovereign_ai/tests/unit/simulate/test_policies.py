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

"""Each policy on a tiny fleet, with outcomes worked out by hand."""

from sovereign_ai.simulate import reference
from sovereign_ai.simulate import state as state_mod
from sovereign_ai.tests import base
from sovereign_ai.tests.unit.simulate import utils

T4_NODE = ('T4', 4, 96000, 393216)
SINGLE = (1000, 1024, 1, 1000)
PAIR = (2000, 2048, 2, 1000)


class TestBestFit(base.TestCase):

    def test_least_remaining_node(self):
        fleet = utils.make_fleet(('T4', 2, 64000, 262144),
                                 ('V100M32', 8, 96000, 393216))
        workload = utils.make_workload(SINGLE)

        result = utils.replay(fleet, workload, 'best-fit')

        # Remaining CPU and GPU shares after placement: 2-GPU node
        # 0.984 + 0.5, 8-GPU node 0.990 + 0.875, so the 2-GPU node wins.
        self.assertEqual(0, result.nodes[0])

    def test_fullest_gpu_for_share(self):
        fleet = utils.make_fleet(('T4', 2, 64000, 262144))
        workload = utils.make_workload((1000, 1024, 1, 1000),
                                       (1000, 1024, 1, 400),
                                       (1000, 1024, 1, 300))

        result = utils.replay(fleet, workload, 'best-fit')

        # One node only, so Nova calls no weigher and the first tasks take
        # the first GPUs that fit: GPU 0, then GPU 1.
        self.assertEqual([(0,), (1,), (1,)], result.gpus)

    def test_fullest_gpu_chosen_by_weigher(self):
        fleet = utils.make_fleet(('T4', 2, 64000, 262144),
                                 ('T4', 2, 64000, 262144))
        state = state_mod.ClusterState(fleet)
        task = state_mod.Task(0, 1000, 1024, 1, 300, 0)
        state.gpu_free[0] = [1000, 600]

        self.assertEqual((1,), reference.best_fit_gpus(state.gpu_free[0],
                                                       task))


class TestFgd(base.TestCase):

    def test_share_fills_fragment(self):
        # For a mix of one-GPU tasks a half-used GPU is fragmented (500);
        # a share of 500 on it removes that (-500), on the free GPU it
        # leaves two half GPUs (+500).
        workload = utils.make_workload(SINGLE, SINGLE, SINGLE)
        mix = reference.task_mix(workload)
        task = state_mod.Task(0, 1000, 1024, 1, 500, 0)

        increase, gpus = reference.fgd_choice(mix, 64000, 262144, 1,
                                              [500, 1000], task)

        self.assertEqual(-500 * 3, increase)
        self.assertEqual((0,), gpus)

    def test_keeps_pairs_placeable(self):
        fleet = utils.make_fleet(T4_NODE, T4_NODE)
        workload = utils.make_workload(PAIR, SINGLE, SINGLE, PAIR, PAIR)

        result = utils.replay(fleet, workload, 'fgd')

        # After the first pair one node has 2 free GPUs, the other 4. A
        # single on the first would leave 1 GPU that pairs cannot use
        # (+3000 for three pairs in the mix). On the other node 3 or 2 GPUs
        # remain and pairs still fit (+0), so both singles go there and
        # the two remaining pairs fit.
        self.assertNotEqual(result.nodes[0], result.nodes[1])
        self.assertEqual(result.nodes[1], result.nodes[2])
        self.assertEqual(0, result.tasks_failed)
        self.assertEqual(8000, result.allocated_milli)

    def test_vector_matches_scalar(self):
        workload = utils.make_workload(SINGLE, PAIR, (1000, 1024, 1, 250),
                                       (4000, 2048, 0, 0),
                                       (90000, 1024, 1, 500, ('T4',)))
        mix = reference.task_mix(workload)
        state = state_mod.ClusterState(utils.make_fleet(T4_NODE, T4_NODE,
                                                        T4_NODE))
        state.gpu_free[0] = [1000, 750, 0, 500]
        state.gpu_free[1] = [250, 250, 1000, 1000]
        state.cpu_free[2] = 50000

        vector = reference.fragmentation_of_states(
            mix, state.cpu_free, state.memory_free, state.model,
            state.gpu_free)

        for node in range(3):
            self.assertEqual(
                reference.node_fragmentation(
                    mix, state.cpu_free[node], state.memory_free[node],
                    state.model[node], state.gpu_free[node]),
                vector[node])


class TestNovaDefault(base.TestCase):

    def test_stacks_on_fewer_free_devices(self):
        fleet = utils.make_fleet(T4_NODE, T4_NODE)
        workload = utils.make_workload(SINGLE, SINGLE)

        result = utils.replay(fleet, workload, 'nova-default')

        # CPU and RAM weighers normalise from 0, so a single task moves
        # them only to about 0.99, while PCIWeigher ranges 0..1 between
        # 3 and 4 free devices: the second task stacks.
        self.assertEqual(result.nodes[0], result.nodes[1])

    def test_pair_stacks_next_to_single(self):
        fleet = utils.make_fleet(T4_NODE, T4_NODE)
        workload = utils.make_workload(SINGLE, PAIR, PAIR, PAIR)

        result = utils.replay(fleet, workload, 'nova-default')

        # The first pair stacks next to the single and leaves 1 GPU
        # there, so the other pairs go to the second node.
        self.assertEqual(result.nodes[0], result.nodes[1])
        self.assertNotEqual(result.nodes[0], result.nodes[2])
        self.assertEqual(result.nodes[2], result.nodes[3])


class TestSovereign(base.TestCase):

    def test_pair_avoids_stranding(self):
        fleet = utils.make_fleet(T4_NODE, T4_NODE)
        workload = utils.make_workload(SINGLE, PAIR, PAIR, PAIR)

        result = utils.replay(fleet, workload, 'sovereign')

        # GpuFragmentationWeigher: on the node with 3 free GPUs a pair
        # leaves 1 GPU that pairs cannot use (+1000), on the empty node
        # none (+0). Its weight outweighs the stacking of PCIWeigher.
        self.assertNotEqual(result.nodes[0], result.nodes[1])
        self.assertEqual(result.nodes[1], result.nodes[2])
        self.assertEqual(result.nodes[0], result.nodes[3])
        self.assertEqual(0, result.tasks_failed)

    def test_affinity_required(self):
        fleet = utils.make_fleet(('V100M32', 8, 96000, 393216),
                                 ('T4', 4, 96000, 393216))
        workload = utils.make_workload(SINGLE, SINGLE, PAIR)

        result = utils.replay(fleet, workload, 'sovereign',
                              affinity='nvlink')

        # T4 nodes have no NVLink, so GpuTopologyFilter keeps the pair on
        # the V100 node.
        self.assertEqual(0, result.nodes[2])
