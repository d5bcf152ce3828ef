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

"""Tiny fleets and workloads for the simulator tests."""

import numpy as np

from sovereign_ai.simulate import fast
from sovereign_ai.simulate import gpu_models
from sovereign_ai.simulate import protocol
from sovereign_ai.simulate import reference
from sovereign_ai.simulate import trace


def make_fleet(*nodes):
    """Return a fleet of ``(model, gpus, cpu_milli, memory_mib)`` nodes."""
    return trace.Fleet(
        name='test-fleet',
        hosts=['node-%d' % index for index in range(len(nodes))],
        cpu_milli=np.array([node[2] for node in nodes], dtype=np.int64),
        memory_mib=np.array([node[3] for node in nodes], dtype=np.int64),
        gpu_count=np.array([node[1] for node in nodes], dtype=np.int64),
        model=np.array([gpu_models.MODEL_NAMES.index(node[0])
                        for node in nodes], dtype=np.int64))


def make_workload(*tasks):
    """Return a workload of tasks given as tuples.

    Each tuple is ``(cpu_milli, memory_mib, num_gpu, gpu_milli)`` with an
    optional fifth item: the names of the allowed GPU models.
    """
    masks = []
    for task in tasks:
        mask = 0
        for name in (task[4] if len(task) > 4 else ()):
            mask |= 1 << gpu_models.MODEL_NAMES.index(name)
        masks.append(mask)

    return trace.Workload(
        name='test-workload',
        names=['task-%d' % index for index in range(len(tasks))],
        cpu_milli=np.array([task[0] for task in tasks], dtype=np.int64),
        memory_mib=np.array([task[1] for task in tasks], dtype=np.int64),
        num_gpu=np.array([task[2] for task in tasks], dtype=np.int64),
        gpu_milli=np.array([task[3] for task in tasks], dtype=np.int64),
        spec_mask=np.array(masks, dtype=np.int64))


def replay(fleet, workload, policy='nova-default', seed=42, affinity='none'):
    """Replay ``workload`` in its own order with the fast engine."""
    engine = fast.FastEngine(fleet, policy, reference.task_mix(workload),
                             affinity)
    return protocol.replay(engine, fleet, workload, seed, policy, affinity)
