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

"""The replay protocol, the one of Weng et al., USENIX ATC '23.

1. The workload is shuffled with the seed.
2. Tasks are drawn again at random, with replacement, and appended until
   the offered GPU demand reaches ``tune`` times the fleet's GPU capacity
   (1.3 by default); a workload that offers more is cut at that point.
   The extended list is shuffled once more.
3. Tasks arrive one by one and never leave. A task that fits on no node is
   dropped and still counts as offered demand.
4. After each task the allocated GPU capacity is recorded against the
   offered demand, so the unallocated share can be read at 100% and 130%
   of capacity.
"""

import dataclasses

import numpy as np

from sovereign_ai.gpu import topology
from sovereign_ai.simulate import state as state_mod

DEMAND_POINTS = np.arange(0, 131)


def tuning_rng(seed):
    """Return the random generator that shuffles and resamples tasks."""
    return np.random.default_rng([seed, 0])


def tie_break_rng(seed):
    """Return the random generator of the tie-break orders."""
    return np.random.default_rng([seed, 1])


def tune(workload, capacity_milli, seed, ratio=1.3):
    """Return the workload of one run: shuffled and resized to ``ratio``.

    :param capacity_milli: GPU capacity of the fleet in milli-GPUs.
    """
    rng = tuning_rng(seed)
    target = ratio * capacity_milli
    demand = workload.gpu_demand_milli
    order = rng.permutation(len(workload))

    total = int(demand.sum())
    if total >= target:
        cumulative = np.cumsum(demand[order])
        keep = int(np.searchsorted(cumulative, target, side='right'))
        return workload.take(order[:keep])

    if total == 0:
        return workload.take(order)

    extra = []
    while total < target:
        draws = rng.integers(0, len(workload), size=1024)
        for draw in draws:
            extra.append(int(draw))
            total += int(demand[draw])
            if total >= target:
                break

    indices = np.concatenate([order, np.array(extra, dtype=np.int64)])
    return workload.take(indices[rng.permutation(len(indices))])


@dataclasses.dataclass
class RunResult:
    """The outcome of one replay of one policy with one seed."""

    policy: str
    seed: int
    #: Node of each task, -1 where the task was dropped.
    nodes: np.ndarray
    #: GPUs taken by each task (empty for dropped and CPU-only tasks).
    gpus: list
    #: Unallocated GPU share (%) at each offered demand of DEMAND_POINTS.
    unallocated_pct: np.ndarray
    tasks_failed: int
    affinity_violations: int
    allocated_milli: int

    def unallocated_at(self, demand_pct):
        return float(self.unallocated_pct[int(demand_pct)])


def _in_one_domain(fleet, node, gpus, level):
    slots = fleet.slots(node)
    domains = set()
    for gpu in gpus:
        slot = slots[gpu]
        domains.add(topology.domain_of(
            {'numa_node': slot.numa_node, 'pcie_switch': slot.pcie_switch,
             'nvlink_domain': slot.nvlink_domain}, level))
    return len(domains) == 1 and None not in domains


def replay(engine, fleet, workload, seed, policy,
           affinity=topology.AFFINITY_NONE, progress=None):
    """Replay ``workload`` (already tuned) through ``engine``.

    :param progress: a callable taking the number of tasks done, or None.
    """
    rng = tie_break_rng(seed)
    capacity = fleet.gpu_capacity_milli
    count = len(workload)
    nodes = np.full(count, -1, dtype=np.int64)
    chosen = [()] * count
    offered = np.zeros(count, dtype=np.int64)
    allocated = np.zeros(count, dtype=np.int64)
    failed = 0
    violations = 0
    offered_total = 0

    for index in range(count):
        task = state_mod.task_at(workload, index)
        order = rng.permutation(len(fleet))
        placement = engine.place(task, order)

        if placement is None:
            failed += 1
        else:
            nodes[index], chosen[index] = placement
            if (affinity != topology.AFFINITY_NONE and task.is_whole
                    and task.num_gpu >= 2
                    and not _in_one_domain(fleet, placement[0],
                                           placement[1], affinity)):
                violations += 1

        offered_total += task.demand_milli
        offered[index] = offered_total
        allocated[index] = engine.state.allocated_milli
        if progress is not None and index % 256 == 0:
            progress(index)

    thresholds = DEMAND_POINTS * capacity / 100.0
    last = np.searchsorted(offered, thresholds, side='right') - 1
    allocated_at = np.where(last >= 0, allocated[np.maximum(last, 0)], 0)
    unallocated = 100.0 - 100.0 * allocated_at / capacity

    return RunResult(policy=policy, seed=seed, nodes=nodes, gpus=chosen,
                     unallocated_pct=unallocated, tasks_failed=failed,
                     affinity_violations=violations,
                     allocated_milli=int(engine.state.allocated_milli))
