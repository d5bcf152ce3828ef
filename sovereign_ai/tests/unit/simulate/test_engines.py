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

"""Both engines make the same placements for every policy."""

from nova import conf as nova_conf
from nova import objects
import numpy as np
from oslo_config import fixture as config_fixture

from sovereign_ai.simulate import fast
from sovereign_ai.simulate import generator
from sovereign_ai.simulate import nova_engine
from sovereign_ai.simulate import protocol
from sovereign_ai.simulate import reference
from sovereign_ai.simulate import trace
from sovereign_ai.tests import base

SAMPLE_TASKS = 120


class TestEngineEquivalence(base.TestCase):

    def setUp(self):
        super().setUp()
        objects.register_all()
        self.useFixture(config_fixture.Config(nova_conf.CONF))

    def assertSamePlacements(self, fleet, workload, policy, seed,
                             affinity='none'):
        tuned = protocol.tune(workload, fleet.gpu_capacity_milli, seed)
        tuned = tuned.take(np.arange(min(SAMPLE_TASKS, len(tuned))))
        mix = reference.task_mix(tuned)

        quick = protocol.replay(
            fast.FastEngine(fleet, policy, mix, affinity), fleet, tuned,
            seed, policy, affinity)
        real = protocol.replay(
            nova_engine.NovaEngine(fleet, policy, mix, affinity), fleet,
            tuned, seed, policy, affinity)

        self.assertEqual(list(real.nodes), list(quick.nodes))
        self.assertEqual(real.gpus, quick.gpus)
        self.assertEqual(real.allocated_milli, quick.allocated_milli)
        self.assertEqual(real.tasks_failed, quick.tasks_failed)
        self.assertEqual(real.affinity_violations,
                         quick.affinity_violations)
        self.assertEqual(list(real.unallocated_pct),
                         list(quick.unallocated_pct))
        return real

    def _embedded(self):
        # One scale unit of the embedded fleet keeps Nova's handlers fast.
        fleet = generator.default_fleet(scale=1)
        return fleet, generator.default_workload(fleet)

    def test_nova_default(self):
        self.assertSamePlacements(*self._embedded(), 'nova-default', 42)

    def test_sovereign(self):
        self.assertSamePlacements(*self._embedded(), 'sovereign', 42)

    def test_best_fit(self):
        self.assertSamePlacements(*self._embedded(), 'best-fit', 42)

    def test_fgd(self):
        self.assertSamePlacements(*self._embedded(), 'fgd', 42)

    def test_sovereign_nvlink_affinity(self):
        result = self.assertSamePlacements(*self._embedded(), 'sovereign', 43,
                                           affinity='nvlink')

        self.assertGreater(result.allocated_milli, 0)

    def test_nova_default_nvlink_affinity(self):
        self.assertSamePlacements(*self._embedded(), 'nova-default', 43,
                                  affinity='nvlink')

    def test_real_trace_sample(self):
        fleet_path = base.skip_unless_shared(
            self, 'traces', 'openb', 'openb_node_list_gpu_node.csv')
        trace_path = base.skip_unless_shared(
            self, 'traces', 'openb', 'openb_pod_list_gpuspec10.csv')
        fleet = trace.read_fleet(fleet_path)
        # Every 20th node keeps the mix of models in a fleet of 61 nodes.
        nodes = np.arange(0, len(fleet), 20)
        fleet = trace.Fleet(
            name=fleet.name, hosts=[fleet.hosts[node] for node in nodes],
            cpu_milli=fleet.cpu_milli[nodes],
            memory_mib=fleet.memory_mib[nodes],
            gpu_count=fleet.gpu_count[nodes], model=fleet.model[nodes])
        workload = trace.read_workload(trace_path)

        for policy in ('sovereign', 'fgd'):
            self.assertSamePlacements(fleet, workload, policy, 42)
