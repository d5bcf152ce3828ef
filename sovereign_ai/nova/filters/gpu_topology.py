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

"""Scheduler filter that keeps the GPUs of an instance in one domain."""

import collections
import copy

from nova import conf
from nova import objects
from nova.pci import utils as pci_utils
from nova.scheduler import filters
from oslo_log import log as logging

from sovereign_ai.conf import scheduler as scheduler_conf
from sovereign_ai.gpu import topology
from sovereign_ai.nova import rate_limit

CONF = conf.CONF
scheduler_conf.register_opts(CONF)

LOG = logging.getLogger(__name__)

# Keys of an InstancePCIRequest spec that Placement matches, or that the
# compute adds after scheduling; pool matching must ignore them.
_IGNORED_SPEC_KEYS = ('resource_class', 'traits', 'rp_uuids')


class GpuTopologyFilter(filters.BaseHostFilter, filters.CandidateFilterMixin):
    """Keep the PCI devices of each flavor PCI request in one domain.

    A flavor requests devices with ``pci_passthrough:alias`` and the domain
    with ``sovereign_ai:gpu_affinity`` (``none``, ``numa``, ``pcie_switch``
    or ``nvlink``). A GPU's domain is its ``numa_node``, or its
    ``pcie_switch`` or ``nvlink_domain`` tag from ``[pci] device_spec``.

    With ``sovereign_ai:gpu_affinity_policy=required`` (the default), a host
    passes only if, for every flavor PCI request of two or more devices, one
    domain of the requested level provides all of them. With ``preferred``
    every host passes, and picking hosts with a fitting domain is left to the
    weighers.

    With ``[filter_scheduler] pci_in_placement = True`` the filter checks each
    allocation candidate of the host: a candidate passes when the resource
    providers that it allocates for each request lie in one domain. The
    filter drops the other candidates (``required``) or moves them behind
    the fitting ones (``preferred``). The scheduler claims the first
    remaining candidate, and on boot the compute claims exactly the devices
    of that allocation, so the instance gets devices that meet the
    affinity.

    Without PCI in Placement the filter checks only that some domain has
    enough free matching devices. Nova's PCI claim on the compute then takes
    free devices in pool order, which can span domains.

    Requests from Neutron ports, and requests for a single device, always
    pass. A GPU that lacks the tag of the requested level belongs to no
    domain and cannot serve a request of two or more devices at that level.
    """

    # Rebuild keeps the flavor and the PCI devices that the instance already
    # holds, but nova-scheduler would check the host against its free
    # devices only, which exclude the instance's own. Running the filter on
    # rebuild would therefore reject the instance's own host whenever the
    # devices were claimed. Resize, cold migration, evacuation, unshelve and
    # multi-create are ordinary scheduling requests and run the filter.
    RUN_ON_REBUILD = False

    _warnings = rate_limit.WarningLimiter(
        LOG, lambda: CONF.sovereign_ai_scheduler.topology_warning_interval)

    def host_passes(self, host_state, spec_obj):
        try:
            return self._host_passes(host_state, spec_obj)
        except Exception as error:
            # A bug here must not fail every boot: pass the host, leave its
            # allocation candidates as they are, and let the other filters
            # decide.
            self._warnings.warn(
                ('error', host_state.host, type(error).__name__),
                'GpuTopologyFilter failed on host %(host)s and passes it '
                'without checking GPU affinity: %(error)r.',
                {'host': host_state.host, 'error': error})
            return True

    def _host_passes(self, host_state, spec_obj):
        requests = self._multi_device_requests(spec_obj)
        if not requests:
            return True

        affinity = self._read_affinity(spec_obj)
        if affinity.level == topology.AFFINITY_NONE:
            return True

        stats = host_state.pci_stats
        pools = list(stats.pools) if stats is not None else []
        if not pools:
            if not affinity.is_required:
                return True
            LOG.debug('%(host_state)s fails GPU affinity %(level)s: the host '
                      'reports no PCI devices for PCI requests %(requests)s.',
                      {'host_state': host_state, 'level': affinity.level,
                       'requests': requests},
                      instance_uuid=_instance_uuid(spec_obj))
            return False

        domains = self._pool_domains(host_state, pools, requests,
                                     affinity.level)

        if self._uses_placement(host_state):
            return self._check_candidates(
                host_state, spec_obj, requests, affinity, domains)

        # NOTE: without PCI in Placement this is a host check only. Nova's
        # PCI claim on the compute (PciDeviceStats.consume_requests in Nova
        # 34) takes free matching devices in pool order, ignoring the tags,
        # so it can take devices from several domains.
        if (not affinity.is_required
                or self._fits_in_pools(stats, requests, domains)):
            return True
        LOG.debug('%(host_state)s fails GPU affinity %(level)s: no single '
                  '%(level)s domain has enough free devices for PCI requests '
                  '%(requests)s (%(unknown)d of %(matching)d matching PCI '
                  'pools have no %(level)s domain).',
                  _rejection_params(host_state, affinity, requests, domains),
                  instance_uuid=_instance_uuid(spec_obj))
        return False

    @staticmethod
    def _multi_device_requests(spec_obj):
        """Return the flavor PCI requests of two or more devices."""
        if 'pci_requests' not in spec_obj or spec_obj.pci_requests is None:
            return []

        return [
            request for request in spec_obj.pci_requests.requests
            if request.source == objects.InstancePCIRequest.FLAVOR_ALIAS
            and request.count >= 2
        ]

    def _read_affinity(self, spec_obj):
        if 'flavor' not in spec_obj or spec_obj.flavor is None:
            return topology.AffinityRequest(
                topology.AFFINITY_NONE, topology.DEFAULT_POLICY)

        flavor = spec_obj.flavor
        extra_specs = flavor.extra_specs if 'extra_specs' in flavor else None
        try:
            return topology.parse_affinity(extra_specs or {})
        except ValueError as error:
            # Flavors created before the extra spec validators were
            # installed, or through a compute API microversion older than
            # 2.86, can hold an invalid value. Which level it meant is
            # unknown, so the flavor is scheduled as if it had none.
            flavor_id = flavor.flavorid if 'flavorid' in flavor else None
            self._warnings.warn(
                ('extra_spec', flavor_id, str(error)),
                'Flavor %(flavor)s: %(error)s GpuTopologyFilter ignores its '
                'GPU affinity until the extra spec is corrected.',
                {'flavor': flavor_id, 'error': error})
            return topology.AffinityRequest(
                topology.AFFINITY_NONE, topology.DEFAULT_POLICY)

    def _pool_domains(self, host_state, pools, requests, level):
        """Map each pool that can serve a request to its domain.

        Pools that match no request are left out, and a matching pool
        without domain information maps to None. A rate-limited warning
        names each device whose attribute is present but names no domain,
        and each device that lacks the attribute while other matching
        devices of the host have it. A host where no matching device has
        the attribute (a host without NVLink, for example) is not warned
        about.
        """
        specs = [_matchable_specs(request) for request in requests]
        attribute = topology.attribute_of(level)
        domains = {}
        for pool in pools:
            if any(pci_utils.pci_device_prop_match(pool, spec)
                   for spec in specs):
                domains[id(pool)] = topology.domain_of(pool, level)

        matching = [pool for pool in pools if id(pool) in domains]
        tagged = [pool for pool in matching
                  if pool.get(attribute) is not None]
        for pool in matching:
            if domains[id(pool)] is not None:
                continue
            if pool.get(attribute) is None and not tagged:
                continue
            if level == topology.AFFINITY_NUMA:
                fix = ('libvirt reports no NUMA node for it; check the NUMA '
                       'settings of the host firmware.')
            else:
                fix = ('Set the %s tag in its [pci] device_spec entry.'
                       % attribute)
            self._warnings.warn(
                ('domain', host_state.host, pool.get('address'), level),
                'Host %(host)s: PCI device %(address)s has %(attribute)s '
                '= %(value)r, which names no %(level)s domain, so it '
                'cannot serve GPU affinity %(level)s requests of more '
                'than one device. %(fix)s',
                {'host': host_state.host,
                 'address': pool.get('address'),
                 'attribute': attribute,
                 'value': pool.get(attribute),
                 'level': level,
                 'fix': fix})
        return domains

    @staticmethod
    def _fits_in_pools(stats, requests, domains):
        """Check that one domain can serve each request from free devices.

        The requests are served one after another on a copy of the pools,
        each from the fitting domain with the fewest free devices, so two
        requests cannot count the same device. Such a greedy order can miss
        a fit when two requests can use the same devices, which is rare for
        aliases of different GPU models.
        """
        working = copy.copy(stats)
        working.pools = copy.deepcopy(stats.pools)
        working_domains = {
            id(copied): domains.get(id(original))
            for original, copied in zip(stats.pools, working.pools)}

        for request in requests:
            request = _without_placement_mapping(request)
            pools_by_domain = collections.defaultdict(list)
            for pool in working.pools:
                domain = working_domains.get(id(pool))
                if domain is not None and pool['count'] > 0:
                    pools_by_domain[domain].append(pool)

            def free_devices(item):
                domain, domain_pools = item
                return (sum(pool['count'] for pool in domain_pools),
                        str(domain))

            for domain, domain_pools in sorted(pools_by_domain.items(),
                                               key=free_devices):
                domain_stats = copy.copy(working)
                domain_stats.pools = list(domain_pools)
                if domain_stats.support_requests([request], None):
                    _consume(domain_stats, domain_pools, request)
                    break
            else:
                return False
        return True

    @staticmethod
    def _uses_placement(host_state):
        return (CONF.filter_scheduler.pci_in_placement
                and bool(host_state.allocation_candidates))

    def _check_candidates(self, host_state, spec_obj, requests, affinity,
                          domains):
        stats = host_state.pci_stats
        pools_by_rp = {}
        for pool in stats.pools:
            if pool.get('rp_uuid') is not None:
                pools_by_rp[pool['rp_uuid']] = pool

        # Computed at most once, and only for a candidate without PCI
        # resource providers.
        pool_check = []

        def fits_in_pools():
            if not pool_check:
                pool_check.append(
                    self._fits_in_pools(stats, requests, domains))
            return pool_check[0]

        def candidate_fits(candidate):
            return _candidate_fits(candidate, requests, pools_by_rp, domains,
                                   fits_in_pools)

        # NOTE: for resize, cold migration and evacuation, Nova 34's move
        # claim (ResourceTracker._move_claim) rebuilds the PCI requests
        # without the Placement mapping and takes free devices in pool
        # order, so the devices of a moved instance can span domains.
        # NOTE: only the candidates that Placement returned are checked, at
        # most [scheduler] max_placement_results of them. On a host with more
        # candidates those may all span domains while a fitting set of free
        # devices exists, and the host is then rejected.
        if affinity.is_required:
            if self.filter_candidates(host_state, candidate_fits):
                return True
            LOG.debug('%(host_state)s fails GPU affinity %(level)s: no '
                      'allocation candidate keeps each of PCI requests '
                      '%(requests)s in a single %(level)s domain '
                      '(%(unknown)d of %(matching)d matching PCI pools have '
                      'no %(level)s domain).',
                      _rejection_params(host_state, affinity, requests,
                                        domains),
                      instance_uuid=_instance_uuid(spec_obj))
            return False

        # Policy preferred: keep every candidate but move the fitting ones
        # first, because the scheduler claims the first candidate of the
        # host that it selects.
        fitting = []
        others = []
        for candidate in host_state.allocation_candidates:
            if candidate_fits(candidate):
                fitting.append(candidate)
            else:
                others.append(candidate)
        host_state.allocation_candidates = fitting + others
        return True


def _instance_uuid(spec_obj):
    if 'instance_uuid' in spec_obj:
        return spec_obj.instance_uuid
    return None


def _rejection_params(host_state, affinity, requests, domains):
    return {
        'host_state': host_state,
        'level': affinity.level,
        'requests': requests,
        'matching': len(domains),
        'unknown': sum(1 for domain in domains.values() if domain is None),
    }


def _consume(domain_stats, domain_pools, request):
    """Take the devices of ``request`` from the pools of one domain.

    apply_requests lowers the count of a pool that keeps devices but drops an
    emptied pool from its list without zeroing it, so zero those here: the
    pool dicts are shared with the caller's copy of all pools.
    """
    domain_stats.apply_requests([request], None)
    for pool in domain_pools:
        if not any(pool is kept for kept in domain_stats.pools):
            pool['count'] = 0


def _matchable_specs(request):
    return [
        {key: value for key, value in spec.items()
         if key not in _IGNORED_SPEC_KEYS}
        for spec in request.spec
    ]


def _without_placement_mapping(request):
    """Return a copy of a PCI request without the compute's rp_uuids.

    A move operation can carry the resource providers of the source host in
    the request spec; pool checks on another host must ignore them.
    """
    if not any('rp_uuids' in spec for spec in request.spec):
        return request

    clone = request.obj_clone()
    clone.spec = [
        {key: value for key, value in spec.items() if key != 'rp_uuids'}
        for spec in request.spec
    ]
    return clone


def _candidate_fits(candidate, requests, pools_by_rp, domains,
                    fits_in_pools):
    """Check that a candidate allocates each request from one domain.

    A request without resource providers in the candidate's mappings is not
    tracked in Placement on this host, so the compute picks its devices
    freely and only the pool check applies: ``fits_in_pools`` is a callable
    that returns its result.
    """
    mappings = candidate.get('mappings') or {}
    for request in requests:
        prefix = '%s-' % request.request_id
        rp_uuids = [
            providers[0] for group, providers in mappings.items()
            if group.startswith(prefix) and providers
        ]
        if not rp_uuids:
            if not fits_in_pools():
                return False
            continue

        request_domains = set()
        for rp_uuid in rp_uuids:
            pool = pools_by_rp.get(rp_uuid)
            if pool is None:
                # The pool of this provider is gone from the host state,
                # for example consumed by an earlier instance of the same
                # multi-create request.
                return False
            request_domains.add(domains.get(id(pool)))

        if len(request_domains) != 1 or None in request_domains:
            return False
    return True
