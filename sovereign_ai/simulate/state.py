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

"""Free resources of every node during a replay, as numpy arrays."""

import typing

import numpy as np

from sovereign_ai.simulate import trace

WHOLE = trace.WHOLE_GPU_MILLI


class Task(typing.NamedTuple):
    """One task of a workload."""

    index: int
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    #: Share of each GPU in milli-GPUs; 0 for a CPU-only task.
    gpu_milli: int
    spec_mask: int

    @property
    def is_sharing(self):
        """Whether the task takes a share of one GPU."""
        return self.num_gpu == 1 and self.gpu_milli < WHOLE

    @property
    def is_whole(self):
        """Whether the task takes one or more whole GPUs."""
        return self.num_gpu >= 1 and self.gpu_milli == WHOLE

    @property
    def demand_milli(self):
        return self.num_gpu * self.gpu_milli

    def key(self):
        """Return the task type: every field but the index."""
        return self[1:]


def task_at(workload, index):
    """Return the :class:`Task` at ``index`` of a workload."""
    return Task(index, int(workload.cpu_milli[index]),
                int(workload.memory_mib[index]), int(workload.num_gpu[index]),
                int(workload.gpu_milli[index]),
                int(workload.spec_mask[index]))


def model_allowed(spec_mask, model):
    """Return whether nodes of ``model`` (array or int) pass ``spec_mask``."""
    if not spec_mask:
        return np.ones_like(model, dtype=bool)
    return ((spec_mask >> model) & 1).astype(bool)


class ClusterState:
    """Free CPU, memory and per-GPU capacity of every node of a fleet.

    An absent GPU slot (a node with fewer GPUs than the largest node) has
    0 free milli-GPUs, so it never fits a request and adds nothing to any
    sum.
    """

    def __init__(self, fleet):
        self.fleet = fleet
        self.cpu_capacity = fleet.cpu_milli.copy()
        self.memory_capacity = fleet.memory_mib.copy()
        self.gpu_count = fleet.gpu_count.copy()
        self.model = fleet.model.copy()

        self.cpu_free = fleet.cpu_milli.copy()
        self.memory_free = fleet.memory_mib.copy()
        width = int(fleet.gpu_count.max())
        self.gpu_free = np.zeros((len(fleet), width), dtype=np.int64)
        for node, count in enumerate(fleet.gpu_count):
            self.gpu_free[node, :count] = WHOLE

        self.whole_free = self.gpu_count.copy()
        self._bits = 1 << np.arange(width, dtype=np.int64)
        #: Bit g set when GPU g of the node is whole-free.
        self.whole_mask = (self.gpu_free == WHOLE) @ self._bits
        self.max_free = np.full(len(fleet), WHOLE, dtype=np.int64)
        self.allocated_milli = 0

    def feasible(self, task):
        """Return the mask of nodes where ``task`` fits."""
        mask = ((self.cpu_free >= task.cpu_milli)
                & (self.memory_free >= task.memory_mib))
        if task.num_gpu:
            mask &= model_allowed(task.spec_mask, self.model)

        if task.is_sharing:
            mask &= self.max_free >= task.gpu_milli
        elif task.is_whole:
            mask &= self.whole_free >= task.num_gpu
        return mask

    def apply(self, node, gpus, task):
        """Take ``task``'s resources on ``node`` from the GPUs ``gpus``."""
        self.cpu_free[node] -= task.cpu_milli
        self.memory_free[node] -= task.memory_mib

        for gpu in gpus:
            if self.gpu_free[node, gpu] < task.gpu_milli:
                raise RuntimeError(
                    'GPU %d of node %d has %d milli-GPUs free, fewer than '
                    'the %d of task %d.' % (gpu, node,
                                            self.gpu_free[node, gpu],
                                            task.gpu_milli, task.index))
            self.gpu_free[node, gpu] -= task.gpu_milli

        row = self.gpu_free[node]
        self.whole_free[node] = int((row == WHOLE).sum())
        self.whole_mask[node] = int((row == WHOLE) @ self._bits)
        self.max_free[node] = int(row.max())
        self.allocated_milli += task.demand_milli

    def first_fit_gpus(self, node, task):
        """Return the lowest-index GPUs of ``node`` that fit ``task``.

        A share goes to the first GPU with enough free capacity; whole-GPU
        tasks take the first whole-free GPUs.
        """
        row = self.gpu_free[node]
        if task.is_sharing:
            return (int(np.flatnonzero(row >= task.gpu_milli)[0]),)
        if task.is_whole:
            return tuple(int(gpu) for gpu in
                         np.flatnonzero(row == WHOLE)[:task.num_gpu])
        return ()
