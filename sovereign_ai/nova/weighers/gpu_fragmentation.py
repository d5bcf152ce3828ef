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

"""Weigh hosts by how much a GPU request would fragment their free GPUs.

The weight of a host is the negated growth of its expected GPU
fragmentation (:mod:`sovereign_ai.gpu.fragmentation`) when the request
lands on it, under the request mix that the weigher learns from the
requests it weighs. With a positive multiplier, the host where the
request keeps the remaining free GPUs most usable wins.

A simulator reproduces the weight of a host from public functions of this
module and of :mod:`sovereign_ai.gpu.fragmentation`:

1. :func:`gpu_request` reads the request shape from the request spec.
2. :func:`observe` counts the shape once in :func:`learned_mix`, and the
   weigher then takes ``learned_mix().distribution()``.
3. :func:`host_gpus` lists the free GPUs of the host that match the
   request, in Nova's pool order.
4. :func:`predict_claimed_gpus` returns the GPUs that the request would
   take: the first ones in pool order, as Nova claims them without PCI
   in Placement, or those of an allocation candidate
   (:func:`candidate_providers`).
5. The weight is ``-fragmentation.expected_increase(gpus, shape,
   distribution, indices=...)`` for those GPUs
   (:func:`fragmentation.expected_increases` computes it for many
   candidates at once, with the same result). With allocation
   candidates, it is that of the candidate sorted first (see
   :meth:`GpuFragmentationWeigher._sort_candidates` for the order). It
   is 0.0 where there is nothing to weigh.

Nova calls weighers only when two or more hosts pass the filters, so a
request that only one host passes is neither observed nor weighed.
"""

import collections
import threading
import typing

from nova import conf as nova_conf
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
from oslo_log import log as logging

from sovereign_ai.conf import scheduler as scheduler_conf
from sovereign_ai.gpu import fragmentation
from sovereign_ai.gpu import topology
from sovereign_ai.nova import rate_limit

CONF = nova_conf.CONF
scheduler_conf.register_opts(CONF)

LOG = logging.getLogger(__name__)

# Option name in [sovereign_ai_scheduler], and the host aggregate metadata
# key that overrides it.
MULTIPLIER_OPTION = 'gpu_fragmentation_weight_multiplier'

# Instance UUIDs whose request was observed. Nova weighs a multi-create
# request again to pick alternates, and a reschedule weighs the same
# instance again; neither is a new request.
_REMEMBERED_INSTANCES = 4096


class GpuRequest(typing.NamedTuple):
    """The flavor PCI request that the weigher scores, and its shape."""

    pci_request: 'objects.InstancePCIRequest'
    shape: fragmentation.RequestShape
    policy: str


_WARNINGS = rate_limit.WarningLimiter(
    LOG,
    lambda: CONF.sovereign_ai_scheduler.gpu_fragmentation_warning_interval)


class _LearnedMix:
    """The request mix shared by every weigher instance of the process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._mix = None
        self._observed = collections.OrderedDict()

    def get(self):
        with self._lock:
            if self._mix is None:
                self._mix = _configured_mix()
            return self._mix

    def reset(self, mix):
        with self._lock:
            self._mix = mix
            self._observed.clear()

    def observe(self, key, shape):
        mix = self.get()
        with self._lock:
            if key is not None:
                if key in self._observed:
                    self._observed.move_to_end(key)
                    return False
                self._observed[key] = True
                while len(self._observed) > _REMEMBERED_INSTANCES:
                    self._observed.popitem(last=False)
        mix.observe(shape)
        return True


_LEARNED_MIX = _LearnedMix()


def _configured_mix():
    group = CONF.sovereign_ai_scheduler
    initial = None
    if group.gpu_request_mix.strip():
        try:
            initial = fragmentation.parse_mix(group.gpu_request_mix)
        except ValueError as error:
            LOG.error('Invalid [sovereign_ai_scheduler] gpu_request_mix '
                      '%(value)r: %(error)s GpuFragmentationWeigher ignores '
                      'it and learns the mix from the requests it weighs. '
                      'Correct the option and restart nova-scheduler.',
                      {'value': group.gpu_request_mix, 'error': error})
    return fragmentation.RequestMix(
        half_life=group.gpu_request_mix_half_life, initial=initial)


def learned_mix():
    """Return the process-wide request mix, created from the options."""
    return _LEARNED_MIX.get()


def reset_learned_mix(mix=None):
    """Replace the process-wide request mix and forget observed instances.

    With ``mix`` None, the next use creates a new mix from the options.
    Tests and the simulator call this between independent runs.
    """
    _LEARNED_MIX.reset(mix)


def observe(spec_obj, request):
    """Count ``request`` in the learned mix once per instance.

    :returns: whether the request was counted; False when its instance
        UUID was already counted.
    """
    key = None
    if spec_obj.obj_attr_is_set('instance_uuid'):
        key = spec_obj.instance_uuid
    return _LEARNED_MIX.observe(key, request.shape)


def _flavor_affinity(spec_obj):
    flavor = spec_obj.flavor if spec_obj.obj_attr_is_set('flavor') else None
    if flavor is None:
        return topology.AffinityRequest(
            topology.DEFAULT_AFFINITY, topology.DEFAULT_POLICY)

    try:
        return topology.parse_affinity(flavor.extra_specs or {})
    except ValueError as error:
        # The flavor API validator rejects such values, but flavors created
        # before it was installed can still hold them.
        _WARNINGS.warn(
            ('extra_spec', flavor.flavorid, str(error)),
            'Flavor %(flavor)s: %(error)s GpuFragmentationWeigher weighs its '
            'requests as if they had no GPU affinity.',
            {'flavor': flavor.flavorid, 'error': error})
        return topology.AffinityRequest(
            topology.DEFAULT_AFFINITY, topology.DEFAULT_POLICY)


def gpu_request(spec_obj):
    """Return the :class:`GpuRequest` of a request spec, or None.

    The weigher scores the flavor PCI request (``pci_passthrough:alias``)
    with the most devices, the first one on a tie. Every device is taken to
    be a whole GPU. Requests from Neutron ports are ignored, and a spec
    without flavor PCI requests returns None.

    :raises ValueError: when the request has an invalid device count.
    """
    pci_requests = None
    if spec_obj.obj_attr_is_set('pci_requests'):
        pci_requests = spec_obj.pci_requests
    if pci_requests is None or not pci_requests.requests:
        return None

    flavor_requests = [
        request for request in pci_requests.requests
        if request.source == objects.InstancePCIRequest.FLAVOR_ALIAS]
    if not flavor_requests:
        return None

    primary = max(flavor_requests, key=lambda request: request.count)
    affinity = _flavor_affinity(spec_obj)
    shape = fragmentation.RequestShape(
        primary.count, affinity=affinity.level)
    return GpuRequest(primary, shape, affinity.policy)


def _tag_domain(host_state, pool, level):
    attribute = topology.attribute_of(level)
    value = pool.get(attribute)
    domain = topology.domain_of(pool, level)
    if value is not None and domain is None:
        _WARNINGS.warn(
            ('tag', host_state.host, pool.get('address'), attribute),
            'Host %(host)s: PCI device %(address)s has %(attribute)s = '
            '%(value)r, which names no domain, so GpuFragmentationWeigher '
            'treats the device as alone in its %(level)s domain. Correct '
            'the %(attribute)s tag in its [pci] device_spec entry.',
            {'host': host_state.host, 'address': pool.get('address'),
             'attribute': attribute, 'value': value, 'level': level})
    return domain


def host_gpus(host_state, pci_request):
    """List the free GPUs of a host that can serve ``pci_request``.

    The pools that can serve the request are those that Nova's own PCI
    matching keeps (``PciDeviceStats._filter_pools``: device spec, PF,
    VDPA, remote-managed and live-migration checks), without NUMA cells
    and without a placement allocation. Each device of such a pool is one
    whole free GPU.

    :returns: ``(gpus, pools)``: the :class:`fragmentation.Gpu` list in
        Nova's pool order and, for each GPU, the pool dict it comes from.
        Both are empty when the host cannot serve the request.
    """
    stats = host_state.pci_stats
    if not stats or not stats.pools:
        return [], []

    matching = stats._filter_pools(stats.pools, pci_request, None, [])
    if not matching:
        return [], []

    gpus = []
    owners = []
    for pool in matching:
        gpu = fragmentation.Gpu(
            fragmentation.WHOLE_GPU_MILLI,
            numa_node=topology.domain_of(pool, topology.AFFINITY_NUMA),
            pcie_switch=_tag_domain(
                host_state, pool, topology.AFFINITY_PCIE_SWITCH),
            nvlink_domain=_tag_domain(
                host_state, pool, topology.AFFINITY_NVLINK))
        for _device in range(pool['count']):
            gpus.append(gpu)
            owners.append(pool)
    return gpus, owners


def candidate_providers(candidate, pci_request):
    """Return the resource providers a candidate allocates for a request.

    Nova's PCI prefilter names the request groups of a flavor PCI request
    ``<request_id>-<index>``, each served by one provider, so a provider
    appears once per device. An empty list means that the candidate does
    not allocate this request in Placement.
    """
    mappings = candidate.get('mappings') or {}
    prefix = pci_request.request_id or ''
    if not prefix:
        return []
    return [providers[0] for group, providers in sorted(mappings.items())
            if group.startswith(prefix) and providers]


def predict_claimed_gpus(owners, count, providers=None):
    """Return the indices of the GPUs that a request takes.

    :param owners: the pool of each GPU, as returned by :func:`host_gpus`.
    :param count: the number of devices requested.
    :param providers: the resource providers of an allocation candidate,
        from :func:`candidate_providers`. Without them, Nova takes the
        first free devices in pool order, and so does this function.
    :returns: a sorted tuple of indices, or None when the GPUs that the
        candidate names are not free on the host.
    """
    if not providers:
        # NOTE: for an instance with a NUMA topology, Nova first narrows
        # the pools to the instance's NUMA cells, which this prediction
        # does not do, so it can name other devices than the claim takes.
        if len(owners) < count:
            return None
        return tuple(range(count))

    free_by_provider = collections.defaultdict(list)
    for index, pool in enumerate(owners):
        provider = pool.get('rp_uuid')
        if provider is not None:
            free_by_provider[provider].append(index)

    claimed = []
    for provider in providers:
        free = free_by_provider.get(provider)
        if not free:
            return None
        claimed.append(free.pop(0))
    return tuple(sorted(claimed))


def _in_one_domain(gpus, indices, level):
    domains = {topology.domain_of(_gpu_attributes(gpus[index]), level)
               for index in indices}
    return len(domains) == 1 and None not in domains


def _gpu_attributes(gpu):
    return {'numa_node': gpu.numa_node,
            'pcie_switch': gpu.pcie_switch,
            'nvlink_domain': gpu.nvlink_domain}


class GpuFragmentationWeigher(weights.BaseHostWeigher):
    """Prefer hosts where a GPU request fragments the free GPUs least.

    For a request with flavor PCI devices, the weight of a host is the
    negated growth of its expected GPU fragmentation when the request takes
    its GPUs there. Fragmentation counts the free GPU capacity that the
    typical requests cannot use, including free GPUs in NUMA nodes, PCIe
    switches or NVLink domains too small for the requests that need one.

    With ``[filter_scheduler] pci_in_placement = True`` every allocation
    candidate of a host is scored, the candidates are sorted best first
    (the scheduler claims the first one), and the host weighs as its best
    candidate. Otherwise Nova claims the first free matching devices in
    pool order, and the host is scored for those.

    Requests without flavor PCI devices weigh 0.0 on every host, and so
    does a host that cannot be scored; the weigher never raises.
    """

    def weight_multiplier(self, host_state):
        """Read the multiplier from aggregate metadata or the option.

        Nova's helper logs an aggregate value that is not a number and
        uses the option instead.
        """
        configured = (
            CONF.sovereign_ai_scheduler.gpu_fragmentation_weight_multiplier)
        try:
            return scheduler_utils.get_weight_multiplier(
                host_state, MULTIPLIER_OPTION, configured)
        except Exception as error:
            _WARNINGS.warn(
                ('multiplier', getattr(host_state, 'host', None),
                 type(error).__name__),
                'GpuFragmentationWeigher cannot read the aggregate metadata '
                'of host %(host)s and uses [sovereign_ai_scheduler] '
                '%(option)s = %(value)s: %(error)r.',
                {'host': getattr(host_state, 'host', None),
                 'option': MULTIPLIER_OPTION, 'value': configured,
                 'error': error})
            return configured

    def weigh_objects(self, weighed_obj_list, weight_properties):
        """Weigh all hosts for one request.

        The request shape and the mix distribution are computed, and the
        request observed, once per call rather than once per host.

        NOTE: Nova calls weighers only when two or more hosts pass the
        filters. When a single host passes, its allocation candidates keep
        Placement's order and the request is not observed.
        """
        context = self._request_context(weight_properties, observe_it=True)
        return [self._safe_weigh(getattr(weighed, 'obj', None), context)
                for weighed in weighed_obj_list]

    def _weigh_object(self, host_state, weight_properties):
        context = self._request_context(weight_properties, observe_it=False)
        return self._safe_weigh(host_state, context)

    def _request_context(self, spec_obj, observe_it):
        try:
            request = gpu_request(spec_obj)
            if request is None:
                return None

            if observe_it:
                observe(spec_obj, request)
            return request, learned_mix().distribution()
        except Exception as error:
            _WARNINGS.warn(
                ('request', type(error).__name__),
                'GpuFragmentationWeigher cannot read the GPU request of '
                'instance %(instance)s and weighs every host 0.0: '
                '%(error)r.',
                {'instance': _instance_uuid(spec_obj), 'error': error})
            return None

    def _safe_weigh(self, host_state, context):
        if context is None:
            return 0.0

        try:
            return self._weigh_host(host_state, *context)
        except Exception as error:
            _WARNINGS.warn(
                ('host', getattr(host_state, 'host', None),
                 type(error).__name__),
                'GpuFragmentationWeigher cannot score host %(host)s and '
                'weighs it 0.0: %(error)r.',
                {'host': getattr(host_state, 'host', None), 'error': error})
            return 0.0

    def _weigh_host(self, host_state, request, distribution):
        stats = host_state.pci_stats
        if not stats or not stats.pools:
            _WARNINGS.warn(
                ('no_pci', host_state.host),
                'Host %(host)s reports no PCI device pools (pci_stats = '
                '%(stats)r) for a GPU request, so GpuFragmentationWeigher '
                'weighs it 0.0. Check [pci] device_spec on that host, and '
                'that PciPassthroughFilter is enabled.',
                {'host': host_state.host, 'stats': stats})
            return 0.0

        gpus, owners = host_gpus(host_state, request.pci_request)
        if not gpus:
            LOG.debug('Host %(host)s has no free GPUs for PCI request '
                      '%(request)s; weighing it 0.0.',
                      {'host': host_state.host,
                       'request': request.pci_request})
            return 0.0

        if _allocates_in_placement(host_state, request):
            increase = self._sort_candidates(
                host_state, request, distribution, gpus, owners)
        else:
            indices = predict_claimed_gpus(owners, request.shape.gpu_count)
            [increase] = fragmentation.expected_increases(
                gpus, request.shape, distribution, [indices])
        return 0.0 if increase is None else -increase

    @staticmethod
    def _sort_candidates(host_state, request, distribution, gpus, owners):
        """Sort the allocation candidates of a host, best first.

        The scheduler claims the first candidate of the host it selects.
        Candidates are ordered by whether their GPUs are free here, then
        by whether they lie in one domain of the requested level (as
        GpuTopologyFilter orders them for policy ``preferred``), then by
        fragmentation increase, then by their original position.

        :returns: the fragmentation increase of the first candidate, or
            None when no candidate can be scored.
        """
        candidates = host_state.allocation_candidates
        claims = []
        for candidate in candidates:
            providers = candidate_providers(candidate, request.pci_request)
            claims.append(predict_claimed_gpus(
                owners, request.shape.gpu_count, providers)
                if providers else None)

        distinct = sorted({indices for indices in claims
                           if indices is not None})
        increases = dict(zip(distinct, fragmentation.expected_increases(
            gpus, request.shape, distribution, distinct)))

        level = request.shape.affinity
        keys = []
        for position, indices in enumerate(claims):
            if indices is None:
                keys.append((True, True, 0.0, position))
                continue
            scattered = not _in_one_domain(gpus, indices, level)
            keys.append((False, scattered, increases[indices], position))

        order = sorted(range(len(candidates)), key=keys.__getitem__)
        host_state.allocation_candidates = [candidates[i] for i in order]

        first = keys[order[0]]
        return None if first[0] else first[2]


def _allocates_in_placement(host_state, request):
    """Check whether an allocation candidate allocates the request."""
    return any(candidate_providers(candidate, request.pci_request)
               for candidate in host_state.allocation_candidates or ())


def _instance_uuid(spec_obj):
    try:
        return spec_obj.instance_uuid
    except Exception:
        return None
