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

"""The embedded default fleet and workload.

``sovereign-ai simulate`` without ``--fleet`` and ``--trace`` replays this
small synthetic fleet and workload. Both are generated from a fixed seed, so
every run and every machine gets the same tasks. The fleet's GPU models and
node sizes are modelled on the public Alibaba GPU cluster trace (mostly
8-GPU nodes), scaled down to run in seconds. The task mix follows the
trace's multi-GPU variants rather than its production list. About 45% of
the GPU demand comes from tasks of 2, 4 or 8 GPUs, as in a cloud that hands
whole GPUs to training jobs, and the rest from GPU-sharing and one-GPU
tasks. No trace data is embedded.
"""

import numpy as np

from sovereign_ai.simulate import gpu_models
from sovereign_ai.simulate import trace

DEFAULT_FLEET_NAME = 'embedded-fleet'
DEFAULT_WORKLOAD_NAME = 'embedded-workload'

_SEED = 20230710

# (model, GPUs per node, number of nodes, CPU milli-cores, memory MiB), for
# a fleet of scale 1. The default fleet has three times as many nodes, which
# keeps the spread between seeds small enough to compare policies.
_NODE_GROUPS = (
    ('G2', 8, 22, 96000, 786432),
    ('G3', 8, 2, 96000, 786432),
    ('V100M32', 8, 2, 96000, 393216),
    ('V100M16', 4, 2, 96000, 393216),
    ('T4', 2, 14, 64000, 393216),
    ('T4', 4, 2, 96000, 393216),
    ('P100', 2, 6, 64000, 262144),
    ('V100M16', 1, 2, 32000, 131072),
    ('A10', 1, 2, 32000, 131072),
)

# (number of GPUs, share of the tasks); 0 GPUs is a CPU-only task.
_TASK_SIZES = ((0, 0.10), ('share', 0.30), (1, 0.48), (2, 0.04),
               (4, 0.04), (8, 0.04))

# Shares of one GPU (milli-GPUs) and their relative popularity.
_SHARES = np.array([810, 470, 320, 650, 230, 460, 160])
_SHARE_WEIGHTS = np.array([35, 24, 11, 8, 5, 4, 3], dtype=float)

# Offered GPU demand of the generated workload, as a share of capacity.
_DEMAND_SHARE = 1.0
# Share of GPU tasks that allow only some GPU models.
_SPEC_SHARE = 0.05


DEFAULT_FLEET_SCALE = 3


def default_fleet(scale=DEFAULT_FLEET_SCALE):
    """Return the embedded fleet: 54 GPU nodes with 268 GPUs per scale unit.

    :param scale: how many times each node group repeats; the default gives
        162 nodes with 804 GPUs.
    """
    hosts, cpu, memory, gpus, models = [], [], [], [], []
    for model, count, nodes, node_cpu, node_memory in _NODE_GROUPS:
        for _ in range(nodes * scale):
            hosts.append('node-%03d' % len(hosts))
            cpu.append(node_cpu)
            memory.append(node_memory)
            gpus.append(count)
            models.append(gpu_models.MODEL_NAMES.index(model))

    return trace.Fleet(
        name=DEFAULT_FLEET_NAME,
        hosts=hosts,
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        gpu_count=np.array(gpus, dtype=np.int64),
        model=np.array(models, dtype=np.int64))


def _task(rng):
    sizes = [size for size, _ in _TASK_SIZES]
    weights = np.array([weight for _, weight in _TASK_SIZES])
    size = sizes[rng.choice(len(sizes), p=weights / weights.sum())]

    if size == 0:
        return rng.choice([2000, 4000, 8000]), rng.choice([4096, 8192]), 0, 0
    if size == 'share':
        weights = _SHARE_WEIGHTS / _SHARE_WEIGHTS.sum()
        share = int(rng.choice(_SHARES, p=weights))
        return rng.choice([3000, 6000]), 12288, 1, share
    cpu = rng.choice([4000, 8000, 12000])
    return cpu * size, 32768 * size, size, trace.WHOLE_GPU_MILLI


def default_workload(fleet=None):
    """Return the embedded workload, about 100% of the fleet's GPUs."""
    fleet = fleet or default_fleet()
    rng = np.random.default_rng(_SEED)
    target = fleet.gpu_capacity_milli * _DEMAND_SHARE
    allowed = (1 << gpu_models.MODEL_NAMES.index('V100M16')
               | 1 << gpu_models.MODEL_NAMES.index('V100M32'))

    names, cpu, memory, counts, shares, masks = [], [], [], [], [], []
    demand = 0
    while demand < target:
        task_cpu, task_memory, num_gpu, gpu_milli = _task(rng)
        mask = 0
        if num_gpu and rng.random() < _SPEC_SHARE:
            mask = allowed

        names.append('task-%04d' % len(names))
        cpu.append(task_cpu)
        memory.append(task_memory)
        counts.append(num_gpu)
        shares.append(gpu_milli)
        masks.append(mask)
        demand += num_gpu * gpu_milli

    return trace.Workload(
        name=DEFAULT_WORKLOAD_NAME,
        names=names,
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        num_gpu=np.array(counts, dtype=np.int64),
        gpu_milli=np.array(shares, dtype=np.int64),
        spec_mask=np.array(masks, dtype=np.int64))
