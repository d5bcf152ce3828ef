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

"""The nova engine: placements decided by Nova's own scheduler code.

Every node is a real ``nova.scheduler.host_manager.HostState`` updated from
an ``objects.ComputeNode``, with ``pci_stats`` a
``nova.pci.stats.PciDeviceStats`` built from one ``objects.PciDevice`` per
GPU. Each device carries its ``numa_node`` and, through the device's
``[pci] device_spec`` entry, the tags ``pcie_switch`` and ``nvlink_domain``.
Every task becomes an ``objects.RequestSpec`` with a flavor. Hosts are
filtered with ``HostFilterHandler.get_filtered_objects`` and weighed with
``HostWeightHandler.get_weighed_objects``; the first weighed host wins, and
the host claims the request with ``HostState.consume_from_request``.

How a task maps to Nova:

* CPU: one vCPU of the flavor is one milli-core of the trace, so that
  fractional CPU requests stay exact. Weighers normalise their weights, so
  the unit does not change a ranking.
* Whole GPUs: PCI passthrough, a flavor PCI request (as from
  ``pci_passthrough:alias``) for ``num_gpu`` devices whose spec lists the
  product ids of the allowed GPU models. ``PciPassthroughFilter`` checks it
  and ``PciDeviceStats.apply_requests`` picks the devices.
* A share of one GPU: Nova's sharing mechanism is vGPU, whose Placement
  resource providers are the physical GPUs. Here each GPU is a resource
  provider with 1000 units of the custom resource class ``CUSTOM_GPU_MILLI``
  and the flavor requests ``resources1:CUSTOM_GPU_MILLI=<share>``, one
  granular group served by a single provider.
"""

import datetime
import json
import uuid

from nova import objects
from nova.pci import stats as pci_stats
from nova.pci import whitelist
from nova.scheduler import filters as nova_filters
from nova.scheduler.filters import affinity_filter
from nova.scheduler.filters import compute_capabilities_filter
from nova.scheduler.filters import compute_filter
from nova.scheduler.filters import image_props_filter
from nova.scheduler.filters import pci_passthrough_filter
from nova.scheduler import host_manager
from nova.scheduler import weights as nova_weights
from oslo_utils import timeutils

from sovereign_ai.gpu import topology
from sovereign_ai.simulate import gpu_models
from sovereign_ai.simulate import reference
from sovereign_ai.simulate import state as state_mod

WHOLE = state_mod.WHOLE

RESOURCE_CLASS = 'CUSTOM_GPU_MILLI'
SHARE_GROUP = '1'
SHARE_EXTRA_SPEC = 'resources%s:%s' % (SHARE_GROUP, RESOURCE_CLASS)
# NOTE: a flavor can require one trait per key, but the trace allows any of
# several GPU models for a share. Placement's query form required=in:A,B
# (microversion 1.39) could express it; the simulator reads the allowed
# models from this key instead.
SHARE_MODELS_EXTRA_SPEC = 'simulate:gpu_models'
PCI_ALIAS = 'gpu'

_CELL = '11111111-2222-4333-8444-555555555555'
# A refresh of each service heartbeat, as nova-compute reports it, keeps
# ComputeFilter from taking a host for down during a long replay.
_HEARTBEAT_SECONDS = 20


def _uuid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(map(str, parts))))


def _device_spec(slot, model):
    spec = {'address': slot.address, 'vendor_id': gpu_models.NVIDIA_VENDOR_ID,
            'product_id': model.product_id,
            'pcie_switch': slot.pcie_switch}
    if slot.nvlink_domain is not None:
        spec['nvlink_domain'] = slot.nvlink_domain
    return spec


class SimulatedHost:
    """A node: its HostState, its GPU devices and their share inventory."""

    def __init__(self, fleet, node, whitelists):
        self.node = node
        self.name = fleet.hosts[node]
        self.model_index = int(fleet.model[node])
        self.model = gpu_models.GPU_MODELS[fleet.model_name(node)]
        self.slots = fleet.slots(node)
        self.cpu_capacity = int(fleet.cpu_milli[node])
        self.memory_capacity = int(fleet.memory_mib[node])
        self.gpu_free = [WHOLE] * len(self.slots)
        self.providers = [_uuid(self.name, slot.address)
                          for slot in self.slots]
        self.root_provider = _uuid(self.name)

        self.host_state = host_manager.HostState(self.name, self.name, _CELL)
        compute = objects.ComputeNode(
            id=node + 1, uuid=self.root_provider, host=self.name,
            hypervisor_hostname=self.name, hypervisor_type='QEMU',
            hypervisor_version=8002000, host_ip='192.0.2.1',
            cpu_info='{}', vcpus=self.cpu_capacity, vcpus_used=0,
            memory_mb=self.memory_capacity, memory_mb_used=0,
            free_ram_mb=self.memory_capacity, local_gb=1024,
            local_gb_used=0, free_disk_gb=1024, disk_available_least=1024,
            current_workload=0, running_vms=0, supported_hv_specs=[],
            stats={}, metrics='[]', numa_topology=None,
            pci_device_pools=objects.PciDevicePoolList(objects=[]),
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            disk_allocation_ratio=1.0, updated_at=None)
        self.host_state.update(compute=compute, service=self.service(),
                               aggregates=[], inst_dict={})

        key = (self.model.name, len(self.slots))
        if key not in whitelists:
            whitelists[key] = whitelist.Whitelist(
                [json.dumps([_device_spec(slot, self.model)
                             for slot in self.slots])])
        stats = pci_stats.PciDeviceStats(None, dev_filter=whitelists[key])
        self.devices = []
        for slot in self.slots:
            device = objects.PciDevice(
                id=node * 100 + slot.index, uuid=_uuid(self.name, slot.index),
                compute_node_id=node + 1, address=slot.address,
                vendor_id=gpu_models.NVIDIA_VENDOR_ID,
                product_id=self.model.product_id, dev_type='type-PCI',
                status='available', dev_id='pci_%s' % slot.address,
                label='label_%s_%s' % (gpu_models.NVIDIA_VENDOR_ID,
                                       self.model.product_id),
                instance_uuid=None, request_id=None, extra_info={},
                numa_node=slot.numa_node, parent_addr=None)
            stats.add_device(device)
            self.devices.append(device)
        self.host_state.pci_stats = stats

    def service(self):
        now = timeutils.utcnow()
        return {'id': self.node + 1, 'host': self.name,
                'binary': 'nova-compute', 'topic': 'compute',
                'disabled': False, 'disabled_reason': None,
                'forced_down': False, 'last_seen_up': now,
                'created_at': now, 'updated_at': now}

    @property
    def cpu_free(self):
        return (self.host_state.vcpus_total - self.host_state.vcpus_used)

    @property
    def memory_free(self):
        return self.host_state.free_ram_mb

    def allocation_candidates(self, task):
        """Return the Placement allocation candidates of ``task`` here.

        NOTE: this method replaces Placement, which real Nova queries
        before any filter runs. It checks VCPU and MEMORY_MB on the host's
        root provider and, for a share, CUSTOM_GPU_MILLI on one GPU
        provider, with one candidate per GPU with room in provider order.
        No virt driver of Nova runs a guest on an arbitrary share of a GPU,
        because vGPU offers fixed-size types and a GPU serves either
        passthrough or vGPU by configuration. The simulation lets a GPU
        serve both, and takes a GPU out of the passthrough pools when its
        first share lands.
        """
        if (self.cpu_free < task.cpu_milli
                or self.memory_free < task.memory_mib):
            return []

        root = {'': [self.root_provider]}
        if not task.is_sharing:
            return [{'mappings': root, 'allocations': {}}]

        if task.spec_mask and not (task.spec_mask >> self.model_index) & 1:
            return []
        return [{'mappings': dict(root, **{SHARE_GROUP: [provider]}),
                 'allocations': {}}
                for provider, free in zip(self.providers, self.gpu_free)
                if free >= task.gpu_milli]

    def gpu_of_candidate(self, candidate):
        return self.providers.index(candidate['mappings'][SHARE_GROUP][0])

    def claim(self, spec_obj, task):
        """Consume ``spec_obj`` on this host; return the GPUs it took."""
        if task.is_sharing:
            candidate = self.host_state.allocation_candidates[0]
            gpu = self.gpu_of_candidate(candidate)
            if self.gpu_free[gpu] == WHOLE:
                self.host_state.pci_stats.remove_device(self.devices[gpu])
            self.gpu_free[gpu] -= task.gpu_milli
            self.host_state.consume_from_request(spec_obj)
            gpus = (gpu,)
        else:
            before = self._pooled_addresses()
            self.host_state.consume_from_request(spec_obj)
            claimed = before - self._pooled_addresses()
            gpus = tuple(sorted(slot.index for slot in self.slots
                                if slot.address in claimed))
            for gpu in gpus:
                self.gpu_free[gpu] = 0

        # NOTE: nova-compute reports instances still building as I/O
        # operations and the scheduler refreshes the host state from that
        # report. Tasks here are built before the next one arrives, so the
        # count returns to 0 instead of growing with every placement.
        self.host_state.num_io_ops = 0
        return gpus

    def _pooled_addresses(self):
        return {pool['address'] for pool in self.host_state.pci_stats.pools
                if pool['count'] > 0}


def request_spec(task, fleet_models, affinity=topology.AFFINITY_NONE):
    """Return the ``objects.RequestSpec`` of a task."""
    instance_uuid = str(uuid.uuid4())
    extra_specs = {}
    pci_requests = []

    allowed = [name for index, name in enumerate(gpu_models.MODEL_NAMES)
               if (not task.spec_mask or (task.spec_mask >> index) & 1)
               and name in fleet_models]

    if task.is_sharing:
        extra_specs[SHARE_EXTRA_SPEC] = str(task.gpu_milli)
        if task.spec_mask:
            extra_specs[SHARE_MODELS_EXTRA_SPEC] = '|'.join(allowed)
    elif task.is_whole:
        extra_specs['pci_passthrough:alias'] = '%s:%d' % (
            PCI_ALIAS, task.num_gpu)
        if affinity != topology.AFFINITY_NONE:
            extra_specs[topology.EXTRA_SPEC_AFFINITY] = affinity
            extra_specs[topology.EXTRA_SPEC_AFFINITY_POLICY] = (
                topology.POLICY_REQUIRED)
        specs = [{'vendor_id': gpu_models.NVIDIA_VENDOR_ID,
                  'product_id': gpu_models.GPU_MODELS[name].product_id}
                 for name in allowed]
        if not specs:
            # No GPU of an allowed model exists: a spec that matches none.
            specs = [{'vendor_id': gpu_models.NVIDIA_VENDOR_ID,
                      'product_id': 'none'}]
        pci_requests.append(objects.InstancePCIRequest(
            count=task.num_gpu, spec=specs, alias_name=PCI_ALIAS,
            request_id=str(uuid.uuid4()), numa_policy=None))

    flavor = objects.Flavor(
        id=task.index + 1, flavorid='task-%d' % task.index,
        name='task-%d' % task.index, vcpus=task.cpu_milli,
        memory_mb=task.memory_mib, root_gb=0, ephemeral_gb=0, swap=0,
        extra_specs=extra_specs)
    return objects.RequestSpec(
        instance_uuid=instance_uuid, project_id='simulate',
        user_id='simulate', flavor=flavor, num_instances=1,
        image=objects.ImageMeta.from_dict({'properties': {}}),
        pci_requests=objects.InstancePCIRequests(
            instance_uuid=instance_uuid, requests=pci_requests),
        numa_topology=None, instance_group=None, ignore_hosts=None,
        force_hosts=None, force_nodes=None, requested_destination=None,
        scheduler_hints={}, availability_zone=None, is_bfv=False,
        requested_resources=[])


def task_of_spec(spec_obj):
    """Return the :class:`state.Task` that a RequestSpec describes."""
    flavor = spec_obj.flavor
    extra_specs = flavor.extra_specs or {}
    num_gpu, gpu_milli, allowed = 0, 0, []

    if SHARE_EXTRA_SPEC in extra_specs:
        num_gpu, gpu_milli = 1, int(extra_specs[SHARE_EXTRA_SPEC])
        models = extra_specs.get(SHARE_MODELS_EXTRA_SPEC)
        allowed = models.split('|') if models else []
    elif spec_obj.pci_requests and spec_obj.pci_requests.requests:
        request = spec_obj.pci_requests.requests[0]
        num_gpu, gpu_milli = request.count, WHOLE
        products = {spec.get('product_id') for spec in request.spec}
        allowed = [model.name for model in gpu_models.GPU_MODELS.values()
                   if model.product_id in products]
        if len(allowed) == len(gpu_models.GPU_MODELS):
            allowed = []

    spec_mask = 0
    for name in allowed:
        spec_mask |= 1 << gpu_models.MODEL_NAMES.index(name)
    return state_mod.Task(-1, flavor.vcpus, flavor.memory_mb, num_gpu,
                          gpu_milli, spec_mask)


class _TaskWeigher(nova_weights.BaseHostWeigher):
    """Base of the reference policy weighers of the nova engine.

    The task comes from the RequestSpec, and the free share of each GPU
    from the engine's Placement stand-in.
    """

    def __init__(self, engine):
        self.engine = engine

    def _host(self, host_state):
        return self.engine.hosts_by_name[host_state.host]

    @staticmethod
    def _put_first(host, gpu):
        candidates = host.host_state.allocation_candidates
        first = [candidate for candidate in candidates
                 if host.gpu_of_candidate(candidate) == gpu]
        rest = [candidate for candidate in candidates
                if host.gpu_of_candidate(candidate) != gpu]
        host.host_state.allocation_candidates = first + rest


class FgdWeigher(_TaskWeigher):
    """Prefer the host where the task's expected fragmentation grows least.

    For a share, the allocation candidate of the best GPU moves first, so
    the scheduler claims that GPU.
    """

    def _weigh_object(self, host_state, spec_obj):
        host = self._host(host_state)
        task = task_of_spec(spec_obj)
        increase, gpus = reference.fgd_choice(
            self.engine.mix, host.cpu_free, host.memory_free,
            host.model_index, host.gpu_free, task)
        if task.is_sharing:
            self._put_first(host, gpus[0])
        return -increase


class BestFitWeigher(_TaskWeigher):
    """Prefer the host with the least resources left after placement."""

    def _weigh_object(self, host_state, spec_obj):
        host = self._host(host_state)
        task = task_of_spec(spec_obj)
        score = reference.best_fit_score(
            host.cpu_free - task.cpu_milli, host.cpu_capacity,
            sum(host.gpu_free) - task.demand_milli,
            len(host.gpu_free) * WHOLE)
        if task.is_sharing:
            self._put_first(host,
                            reference.best_fit_gpus(host.gpu_free, task)[0])
        return -score


def _default_filters():
    # Nova 34's default [filter_scheduler] enabled_filters, then
    # PciPassthroughFilter, which every PCI passthrough deployment enables.
    return [compute_filter.ComputeFilter(),
            compute_capabilities_filter.ComputeCapabilitiesFilter(),
            image_props_filter.ImagePropertiesFilter(),
            affinity_filter.ServerGroupAntiAffinityFilter(),
            affinity_filter.ServerGroupAffinityFilter(),
            pci_passthrough_filter.PciPassthroughFilter()]


class NovaEngine:
    """Place tasks one by one with Nova's filter and weigher handlers."""

    name = 'nova'

    def __init__(self, fleet, policy, mix, affinity=topology.AFFINITY_NONE):
        objects.register_all()
        self.fleet = fleet
        self.mix = mix
        self.affinity = affinity
        self.state = state_mod.ClusterState(fleet)
        self.fleet_models = {fleet.model_name(node)
                             for node in range(len(fleet))}

        whitelists = {}
        self.hosts = [SimulatedHost(fleet, node, whitelists)
                      for node in range(len(fleet))]
        self.hosts_by_name = {host.name: host for host in self.hosts}
        self.heartbeat = timeutils.utcnow()

        self.filter_handler = nova_filters.HostFilterHandler()
        self.weight_handler = nova_weights.HostWeightHandler()
        self.filters = _default_filters()
        self.weighers = [cls() for cls in nova_weights.all_weighers()]

        if policy == 'sovereign':
            # Imported here: these modules register options on Nova's CONF.
            from sovereign_ai.nova.filters import gpu_topology
            from sovereign_ai.nova.weighers import gpu_fragmentation

            gpu_fragmentation.reset_learned_mix()
            self.filters.append(gpu_topology.GpuTopologyFilter())
            self.weighers.append(gpu_fragmentation.GpuFragmentationWeigher())
        elif policy == 'fgd':
            self.weighers = [FgdWeigher(self)]
        elif policy == 'best-fit':
            self.weighers = [BestFitWeigher(self)]
        elif policy != 'nova-default':
            raise ValueError('Unknown policy %r.' % policy)

    def _refresh_heartbeats(self):
        now = timeutils.utcnow()
        if now - self.heartbeat < datetime.timedelta(
                seconds=_HEARTBEAT_SECONDS):
            return
        for host in self.hosts:
            host.host_state.update(service=host.service())
        self.heartbeat = now

    def place(self, task, order):
        """Place ``task`` on a node.

        :returns: ``(node, gpus)``, or None when the task fits nowhere.
        :param order: every node index, in the tie-break order of this task.
        """
        self._refresh_heartbeats()
        spec_obj = request_spec(task, self.fleet_models, self.affinity)

        candidates = []
        for node in order:
            host = self.hosts[node]
            allocation_candidates = host.allocation_candidates(task)
            if allocation_candidates:
                host.host_state.allocation_candidates = allocation_candidates
                candidates.append(host.host_state)

        passed = self.filter_handler.get_filtered_objects(
            self.filters, candidates, spec_obj, 0)
        if not passed:
            return None

        weighed = self.weight_handler.get_weighed_objects(
            self.weighers, passed, spec_obj)
        host = self.hosts_by_name[weighed[0].obj.host]
        gpus = host.claim(spec_obj, task)

        self.state.apply(host.node, gpus, task)
        return host.node, gpus
