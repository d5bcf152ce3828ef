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

"""The fast engine: every policy computed over all nodes with numpy.

The engine reproduces with numpy arrays the decisions that the ``nova``
engine takes with Nova's filter and weigher handlers. The same hosts pass,
and each weigher's weights are normalised as ``nova.weights.normalize``
does and summed in the order of ``nova.scheduler.weights.all_weighers()``.
The first host of the highest weight in the tie-break order wins. The
engine equivalence tests check this on samples. Nothing here imports
Nova.
"""

import numpy as np

from sovereign_ai.conf import scheduler as scheduler_conf
from sovereign_ai.gpu import fragmentation
from sovereign_ai.gpu import topology
from sovereign_ai.simulate import reference
from sovereign_ai.simulate import state as state_mod

WHOLE = state_mod.WHOLE

# Nova 34 PCIWeigher: weight = MAX_DEVS - min(free devices, MAX_DEVS - 1).
PCI_WEIGHER_MAX_DEVS = 100


def _option_default(name):
    for option in scheduler_conf.OPTS:
        if option.name == name:
            return option.default
    raise KeyError(name)


def normalize(values, minval=None):
    """Normalise weights to 0..1 as ``nova.weights.normalize`` does."""
    if not len(values):
        return np.zeros(0)

    maxval = float(values.max())
    minval = float(values.min()) if minval is None else float(minval)
    if minval == maxval:
        return np.zeros(len(values))
    return (values - minval) / (maxval - minval)


def nova_default_weights(state, hosts):
    """Return the summed weights of Nova's default weighers.

    With the simulated hosts only CPUWeigher, RAMWeigher and PCIWeigher
    differ between hosts. CPUWeigher, RAMWeigher and DiskWeigher normalise
    from a minimum of 0, so DiskWeigher adds 1.0 to every host because all
    hosts have the same free disk. Hypervisor version, metrics, build
    failures, I/O operations and server groups are the same everywhere
    and weigh 0, and NumInstancesWeigher and ImagePropertiesWeigher have
    multiplier 0. The sum runs in the order of ``all_weighers()``, so the
    floats equal Nova's.
    """
    used = state.cpu_capacity[hosts] - state.cpu_free[hosts]
    vcpus_free = state.cpu_capacity[hosts] * 1.0 - used
    cpu = normalize(np.maximum(vcpus_free, 0), minval=0)

    ram = normalize(np.maximum(state.memory_free[hosts], 0), minval=0)
    disk = 1.0

    free_devices = np.minimum(state.whole_free[hosts],
                              PCI_WEIGHER_MAX_DEVS - 1)
    pci = normalize(PCI_WEIGHER_MAX_DEVS - free_devices)
    return ((cpu + ram) + disk) + pci


class Policy:
    """Host filter, weights and GPU choice of one policy."""

    def __init__(self, state, mix, affinity):
        self.state = state
        self.mix = mix
        self.affinity = affinity

    def host_filter(self, task, hosts):
        """Return the hosts, a subset of ``hosts`` in order, that pass."""
        return hosts

    def weigh(self, task, hosts):
        """Return the weight of each host; called for two or more hosts."""
        raise NotImplementedError

    def gpus(self, task, node):
        """Return the GPUs of ``node`` that ``task`` takes."""
        return self.state.first_fit_gpus(node, task)

    def node_changed(self, node):
        """Note that the resources of ``node`` changed."""


class NovaDefaultPolicy(Policy):

    def weigh(self, task, hosts):
        return nova_default_weights(self.state, hosts)


class SovereignPolicy(Policy):
    """Nova's defaults plus GpuTopologyFilter and GpuFragmentationWeigher.

    The weigher scores flavor PCI requests (whole GPUs) only. It learns
    the request mix from the requests it weighs, and this class replays
    that learning with the same :class:`fragmentation.RequestMix`.
    """

    def __init__(self, state, mix, affinity):
        super().__init__(state, mix, affinity)
        # NOTE: the nova engine reads these options from Nova's CONF, and
        # this engine takes their defaults. The command loads no nova.conf,
        # so both engines run with the defaults.
        self.multiplier = _option_default(
            'gpu_fragmentation_weight_multiplier')
        self.learned = fragmentation.RequestMix(
            half_life=_option_default('gpu_request_mix_half_life'))
        self.fleet = state.fleet
        self._slots = {}
        self._terms = {}

    def _domain_gpus(self, node):
        key = (int(self.state.model[node]), int(self.state.gpu_count[node]))
        if key not in self._slots:
            self._slots[key] = [
                fragmentation.Gpu(WHOLE, numa_node=slot.numa_node,
                                  pcie_switch=slot.pcie_switch,
                                  nvlink_domain=slot.nvlink_domain)
                for slot in self.fleet.slots(node)]
        return self._slots[key]

    def _free_gpus(self, node):
        row = self.state.gpu_free[node]
        slots = self._domain_gpus(node)
        return [slots[gpu] for gpu in np.flatnonzero(row == WHOLE)]

    def _expected(self, key, gpus, distribution):
        # The sum of fragmentation.expected_fragmentation, with each
        # shape's term (which does not depend on the distribution) cached
        # per layout: `key` is the layout and the number of GPUs taken.
        terms = []
        for shape, probability in distribution:
            if (key, shape) not in self._terms:
                self._terms[key, shape] = fragmentation.shape_fragmentation(
                    gpus, shape)
            terms.append(probability * self._terms[key, shape])
        return sum(terms)

    def host_filter(self, task, hosts):
        if (self.affinity == topology.AFFINITY_NONE or not task.is_whole
                or task.num_gpu < 2):
            return hosts

        keep = []
        for node in hosts:
            domains = {}
            for gpu in self._free_gpus(node):
                domain = topology.domain_of(
                    {'numa_node': gpu.numa_node,
                     'pcie_switch': gpu.pcie_switch,
                     'nvlink_domain': gpu.nvlink_domain}, self.affinity)
                if domain is not None:
                    domains[domain] = domains.get(domain, 0) + 1
            if any(count >= task.num_gpu for count in domains.values()):
                keep.append(node)
        return np.array(keep, dtype=np.int64)

    def weigh(self, task, hosts):
        weights = nova_default_weights(self.state, hosts)
        if not task.is_whole:
            return weights

        shape = fragmentation.RequestShape(task.num_gpu,
                                           affinity=self.affinity)
        self.learned.observe(shape)
        distribution = self.learned.distribution()
        taken_indices = tuple(range(task.num_gpu))

        # Hosts with the same model, GPU count and whole-free GPUs have the
        # same increase, so it is computed once per such layout.
        state = self.state
        layouts = ((state.model[hosts] * 64 + state.gpu_count[hosts])
                   << 32) | state.whole_mask[hosts]
        unique, first, inverse = np.unique(
            layouts, return_index=True, return_inverse=True)
        increases = np.empty(len(unique))
        for position, index in enumerate(first):
            gpus = self._free_gpus(int(hosts[index]))
            before = self._expected((unique[position], 0), gpus,
                                    distribution)
            after = self._expected(
                (unique[position], task.num_gpu),
                fragmentation.place(gpus, taken_indices, shape), distribution)
            increases[position] = after - before
        raw = -increases[inverse.reshape(-1)]
        return weights + self.multiplier * normalize(raw)


class BestFitPolicy(Policy):

    def weigh(self, task, hosts):
        state = self.state
        score = reference.best_fit_score(
            state.cpu_free[hosts] - task.cpu_milli, state.cpu_capacity[hosts],
            state.gpu_free[hosts].sum(axis=1) - task.demand_milli,
            state.gpu_count[hosts] * WHOLE)
        return normalize(-score)

    def gpus(self, task, node):
        return reference.best_fit_gpus(self.state.gpu_free[node], task)


class FgdPolicy(Policy):
    """FGD with a cache of each node's increase per task type.

    Placing a task changes one node, so the increase of a task type on the
    other nodes stays valid. Each entry records the node version it was
    computed for.
    """

    def __init__(self, state, mix, affinity):
        super().__init__(state, mix, affinity)
        nodes = len(state.cpu_free)
        self.version = np.zeros(nodes, dtype=np.int64)
        self.node_value = reference.fragmentation_of_states(
            mix, state.cpu_free, state.memory_free, state.model,
            state.gpu_free)
        self.types = {}
        self.increase = np.zeros((nodes, 0), dtype=np.int64)
        self.best_gpu = np.zeros((nodes, 0), dtype=np.int64)
        self.computed = np.zeros((nodes, 0), dtype=np.int64)

    def _column(self, task):
        key = task.key()
        if key not in self.types:
            self.types[key] = len(self.types)
            nodes = len(self.version)
            self.increase = np.hstack(
                [self.increase, np.zeros((nodes, 1), dtype=np.int64)])
            self.best_gpu = np.hstack(
                [self.best_gpu, np.zeros((nodes, 1), dtype=np.int64)])
            self.computed = np.hstack(
                [self.computed, np.full((nodes, 1), -1, dtype=np.int64)])
        return self.types[key]

    def _refresh(self, task, column, hosts):
        stale = hosts[self.computed[hosts, column] != self.version[hosts]]
        if not len(stale):
            return

        state = self.state
        free = state.gpu_free[stale]
        if task.is_sharing:
            owner, gpu = np.nonzero(free >= task.gpu_milli)
        else:
            owner = np.arange(len(stale))
            gpu = np.full(len(stale), -1)

        after = free[owner].copy()
        if task.is_sharing:
            after[np.arange(len(owner)), gpu] -= task.gpu_milli
        elif task.is_whole:
            # The first whole-free GPUs, as fgd_choice takes them.
            rank = np.cumsum(after == WHOLE, axis=1)
            after[(after == WHOLE) & (rank <= task.num_gpu)] = 0

        nodes = stale[owner]
        value = reference.fragmentation_of_states(
            self.mix, state.cpu_free[nodes] - task.cpu_milli,
            state.memory_free[nodes] - task.memory_mib, state.model[nodes],
            after)
        increase = value - self.node_value[nodes]

        # Smallest increase per node, the lowest GPU index on a tie: sort
        # by (node, increase, gpu) and keep each node's first row.
        order = np.lexsort((gpu, increase, owner))
        first = np.ones(len(order), dtype=bool)
        first[1:] = owner[order][1:] != owner[order][:-1]
        chosen = order[first]

        self.increase[stale[owner[chosen]], column] = increase[chosen]
        self.best_gpu[stale[owner[chosen]], column] = gpu[chosen]
        self.computed[stale, column] = self.version[stale]

    def weigh(self, task, hosts):
        column = self._column(task)
        self._refresh(task, column, hosts)
        return normalize(-self.increase[hosts, column])

    def gpus(self, task, node):
        if not task.is_sharing:
            return self.state.first_fit_gpus(node, task)

        column = self._column(task)
        self._refresh(task, column, np.array([node]))
        return (int(self.best_gpu[node, column]),)

    def node_changed(self, node):
        state = self.state
        self.version[node] += 1
        self.node_value[node] = reference.fragmentation_of_states(
            self.mix, state.cpu_free[node:node + 1],
            state.memory_free[node:node + 1], state.model[node:node + 1],
            state.gpu_free[node:node + 1])[0]


POLICIES = {
    'nova-default': NovaDefaultPolicy,
    'sovereign': SovereignPolicy,
    'best-fit': BestFitPolicy,
    'fgd': FgdPolicy,
}


class FastEngine:
    """Place tasks one by one with a numpy :class:`Policy`."""

    name = 'fast'

    def __init__(self, fleet, policy, mix, affinity=topology.AFFINITY_NONE):
        self.state = state_mod.ClusterState(fleet)
        self.policy = POLICIES[policy](self.state, mix, affinity)

    def place(self, task, order):
        """Place ``task`` on a node.

        :returns: ``(node, gpus)``, or None when the task fits nowhere.
        :param order: every node index, in the tie-break order of this task.
        """
        feasible = self.state.feasible(task)
        hosts = order[feasible[order]]
        hosts = self.policy.host_filter(task, hosts)
        if not len(hosts):
            return None

        # Nova weighs hosts only when two or more pass the filters, so with
        # one host no weigher picks the GPUs and the first ones are taken.
        if len(hosts) == 1:
            node = int(hosts[0])
            gpus = self.state.first_fit_gpus(node, task)
        else:
            weights = self.policy.weigh(task, hosts)
            node = int(hosts[int(np.argmax(weights))])
            gpus = self.policy.gpus(task, node)

        self.state.apply(node, gpus, task)
        self.policy.node_changed(node)
        return node, gpus
