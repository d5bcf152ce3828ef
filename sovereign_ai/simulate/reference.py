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

"""The reference policies best-fit and FGD, written from their description.

Both come from Weng et al., "Beware of Fragmentation: Scheduling
GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC '23.

FGD (fragmentation gradient descent) places a task on the node, and the
GPUs of that node, where the expected fragmentation of the node grows
least. For one task type, the fragmentation of a node is the free GPU
capacity that the type cannot use. When the type does not fit on the node
at all (CPU, memory, GPU model or GPU capacity), that is all free capacity.
Otherwise it is the free capacity of the GPUs with less free than the type
needs on one GPU (its share, or a whole GPU). The expected fragmentation weighs
the types by their popularity in the workload. Counts are used instead of
probabilities, so the values are exact integers (milli-GPUs times tasks).

NOTE: a CPU-only type cannot use any GPU, so all free GPU capacity counts
as fragmented for it. That adds the same amount to every node's increase
when a GPU task is placed, so it never changes a placement of a GPU task.

Best-fit places a task on the node with the least remaining resources
after placement: the sum of the remaining shares of the node's CPU and GPU
capacity, with equal weights. Memory stays a hard constraint but is not
in the score. NOTE: which dimensions the paper's BestFit sums is an
inference. Without memory the published BestFit figures on the trace are
reproduced within 0.2 points; with memory the results are 0.6 to 1.1
points above them.

Each policy has a scalar form (one node at a time, used by the Nova
weighers of the ``nova`` engine) and a vectorised form (all nodes at once,
used by the ``fast`` engine). The engine equivalence test checks that the
two agree.
"""

import typing

import numpy as np

from sovereign_ai.simulate import gpu_models
from sovereign_ai.simulate import state as state_mod

WHOLE = state_mod.WHOLE


class TaskMix(typing.NamedTuple):
    """The task types of a workload and their counts, as arrays."""

    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    num_gpu: np.ndarray
    gpu_milli: np.ndarray
    spec_mask: np.ndarray
    count: np.ndarray
    #: Free capacity that one GPU needs for the type: the share, a whole
    #: GPU, or 0 for a CPU-only type.
    need: np.ndarray
    #: The distinct values of ``need`` and the index of each type's.
    needs: np.ndarray
    need_index: np.ndarray
    #: Row m: whether each type is a GPU type that allows GPU model m.
    allowed_by_model: np.ndarray
    #: Whether each type takes a share of one GPU.
    sharing: np.ndarray


def task_mix(workload):
    """Return the :class:`TaskMix` of a workload."""
    table = np.stack([workload.cpu_milli, workload.memory_mib,
                      workload.num_gpu, workload.gpu_milli,
                      workload.spec_mask], axis=1)
    types, counts = np.unique(table, axis=0, return_counts=True)
    num_gpu, spec_mask = types[:, 2], types[:, 4]
    need = np.where(num_gpu > 0, types[:, 3], 0)
    needs, need_index = np.unique(need, return_inverse=True)

    models = np.arange(len(gpu_models.MODEL_NAMES))[:, None]
    allowed = ((spec_mask[None, :] == 0)
               | ((spec_mask[None, :] >> models) & 1 == 1))
    allowed &= num_gpu[None, :] > 0

    return TaskMix(types[:, 0], types[:, 1], num_gpu, types[:, 3], spec_mask,
                   counts.astype(np.int64), need, needs,
                   need_index.reshape(-1), allowed, need < WHOLE)


def node_fragmentation(mix, cpu_free, memory_free, model, gpu_free):
    """Return the expected fragmentation of one node (scalar form).

    :param gpu_free: free milli-GPUs of each GPU of the node.
    :returns: an int, the sum over task types of count times the free
        milli-GPUs that the type cannot use.
    """
    gpu_free = [int(free) for free in gpu_free]
    total = sum(gpu_free)
    whole_free = sum(1 for free in gpu_free if free == WHOLE)
    max_free = max(gpu_free) if gpu_free else 0

    fragmented = 0
    for index in range(len(mix.count)):
        num_gpu = int(mix.num_gpu[index])
        need = int(mix.need[index])
        spec = int(mix.spec_mask[index])

        fits = (num_gpu > 0
                and cpu_free >= mix.cpu_milli[index]
                and memory_free >= mix.memory_mib[index]
                and (not spec or (spec >> model) & 1))
        if fits and need < WHOLE:
            fits = max_free >= need
        elif fits:
            fits = whole_free >= num_gpu

        if fits:
            unusable = sum(free for free in gpu_free if free < need)
        else:
            unusable = total
        fragmented += int(mix.count[index]) * unusable
    return fragmented


def fragmentation_of_states(mix, cpu_free, memory_free, model, gpu_free):
    """Return the expected fragmentation of many node states (vectorised).

    The arguments are arrays with one entry (``gpu_free``: one row) per
    state. The result equals :func:`node_fragmentation` for each state.
    """
    total = gpu_free.sum(axis=1)
    whole_free = (gpu_free == WHOLE).sum(axis=1)
    max_free = gpu_free.max(axis=1)

    # unusable[s, d]: free capacity of the GPUs of state s with less free
    # than needs[d].
    free = gpu_free[:, :, None]
    unusable = (free * (free < mix.needs[None, None, :])).sum(axis=1)

    gpu_fits = np.where(mix.sharing[None, :],
                        max_free[:, None] >= mix.need[None, :],
                        whole_free[:, None] >= mix.num_gpu[None, :])
    fits = (mix.allowed_by_model[model]
            & (cpu_free[:, None] >= mix.cpu_milli[None, :])
            & (memory_free[:, None] >= mix.memory_mib[None, :])
            & gpu_fits)

    fragmented = np.where(fits, unusable[:, mix.need_index], total[:, None])
    return fragmented @ mix.count


def fgd_choice(mix, cpu_free, memory_free, model, gpu_free, task):
    """Return ``(increase, gpus)`` of FGD for a task on one node (scalar).

    A share tries every GPU with room and keeps the one with the smallest
    increase, the lowest index on a tie. Whole GPUs are interchangeable for
    the measure, so whole-GPU tasks take the first whole-free GPUs.
    """
    gpu_free = [int(free) for free in gpu_free]
    before = node_fragmentation(mix, cpu_free, memory_free, model, gpu_free)
    cpu_after = cpu_free - task.cpu_milli
    memory_after = memory_free - task.memory_mib

    if task.is_sharing:
        options = [(gpu,) for gpu, free in enumerate(gpu_free)
                   if free >= task.gpu_milli]
    elif task.is_whole:
        whole = [gpu for gpu, free in enumerate(gpu_free) if free == WHOLE]
        options = [tuple(whole[:task.num_gpu])]
    else:
        options = [()]

    best = None
    for gpus in options:
        after_free = list(gpu_free)
        for gpu in gpus:
            after_free[gpu] -= task.gpu_milli
        after = node_fragmentation(mix, cpu_after, memory_after, model,
                                   after_free)
        if best is None or after - before < best[0]:
            best = (after - before, gpus)
    return best


def best_fit_score(cpu_left, cpu_capacity, gpu_left, gpu_capacity):
    """Return the remaining share of a node's CPU and GPU after placement.

    Works on scalars and on numpy arrays alike, with the same operations
    in the same order, so both forms give identical floats.
    """
    return cpu_left / cpu_capacity + gpu_left / gpu_capacity


def best_fit_gpus(gpu_free, task):
    """Return the GPUs best-fit takes on a node (scalar).

    A share goes to the GPU with the least free capacity that still fits,
    and to the lowest index on a tie. Whole-GPU tasks take the first
    whole-free GPUs.
    """
    gpu_free = [int(free) for free in gpu_free]
    if task.is_sharing:
        fitting = [gpu for gpu, free in enumerate(gpu_free)
                   if free >= task.gpu_milli]
        return (min(fitting, key=lambda gpu: (gpu_free[gpu], gpu)),)
    if task.is_whole:
        whole = [gpu for gpu, free in enumerate(gpu_free) if free == WHOLE]
        return tuple(whole[:task.num_gpu])
    return ()
