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

"""Unit tests of GpuTopologyFilter on real Nova objects.

Each host is built the way Nova builds it: objects.PciDevice devices go
through PciDeviceStats with a real [pci] device_spec whitelist on the
compute side, and the scheduler's HostState reads them back from the
PciDevicePoolList that the compute reports.
"""

import itertools
import logging

import fixtures
from nova import objects
from nova.objects import fields
from nova.pci import stats as pci_stats
from nova.pci import whitelist
from nova.scheduler import host_manager
from oslo_config import fixture as config_fixture
from oslo_serialization import jsonutils
from oslo_utils import uuidutils

from sovereign_ai.nova import filters
from sovereign_ai.nova.filters import gpu_topology
from sovereign_ai.nova import rate_limit
from sovereign_ai.tests import base

objects.register_all()

VENDOR_ID = '10de'
PRODUCT_ID = '2330'  # H100 SXM5 80GB

# An HGX H100 board: eight GPUs behind four PCIe switches, two NUMA nodes,
# and one NVSwitch fabric that connects all of them.
HGX_GPUS = [
    # (address, numa_node, pcie_switch, nvlink_domain)
    ('0000:18:00.0', 0, 'sw0', 'nvs0'),
    ('0000:2a:00.0', 0, 'sw0', 'nvs0'),
    ('0000:3a:00.0', 0, 'sw1', 'nvs0'),
    ('0000:5d:00.0', 0, 'sw1', 'nvs0'),
    ('0000:9a:00.0', 1, 'sw2', 'nvs0'),
    ('0000:ab:00.0', 1, 'sw2', 'nvs0'),
    ('0000:ba:00.0', 1, 'sw3', 'nvs0'),
    ('0000:db:00.0', 1, 'sw3', 'nvs0'),
]

# A PCIe server: eight GPUs on two switches, joined in pairs by NVLink
# bridges.
PCIE_GPUS = [
    ('0000:17:00.0', 0, 'sw0', 'pair0'),
    ('0000:31:00.0', 0, 'sw0', 'pair0'),
    ('0000:4b:00.0', 0, 'sw0', 'pair1'),
    ('0000:65:00.0', 0, 'sw0', 'pair1'),
    ('0000:98:00.0', 1, 'sw1', 'pair2'),
    ('0000:b1:00.0', 1, 'sw1', 'pair2'),
    ('0000:ca:00.0', 1, 'sw1', 'pair3'),
    ('0000:e3:00.0', 1, 'sw1', 'pair3'),
]


def rp_uuid_of(address):
    """Return a stable resource provider UUID for a GPU address."""
    digits = address.replace(':', '').replace('.', '')
    return '00000000-0000-0000-0000-%012x' % int(digits, 16)


def device_spec(gpus, tags=True):
    """Return [pci] device_spec entries, one per GPU, as JSON strings."""
    specs = []
    for address, _numa, switch, nvlink in gpus:
        spec = {'vendor_id': VENDOR_ID, 'product_id': PRODUCT_ID,
                'address': address}
        if tags:
            spec.update(pcie_switch=switch, nvlink_domain=nvlink)
        specs.append(jsonutils.dumps(spec))
    return specs


def compute_stats(gpus, specs=None, used=()):
    """Build the compute's PciDeviceStats for the GPUs, minus ``used``."""
    stats = pci_stats.PciDeviceStats(
        None, dev_filter=whitelist.Whitelist(specs or device_spec(gpus)))
    for address, numa_node, _switch, _nvlink in gpus:
        if address in used:
            continue
        device = objects.PciDevice.create(None, {
            'compute_node_id': 1,
            'address': address,
            'vendor_id': VENDOR_ID,
            'product_id': PRODUCT_ID,
            'dev_type': fields.PciDeviceType.STANDARD,
            'status': fields.PciDeviceStatus.AVAILABLE,
            'numa_node': numa_node,
            'parent_addr': None,
            'label': 'label_%s_%s' % (VENDOR_ID, PRODUCT_ID),
            'dev_id': 'pci_' + address.replace(':', '_').replace('.', '_'),
        })
        device.extra_info = {'rp_uuid': rp_uuid_of(address)}
        stats.add_device(device)
    stats.populate_pools_metadata_from_assigned_devices()
    return stats


def host(gpus, specs=None, used=(), name='host1'):
    """Build the scheduler's HostState from the compute's pool report."""
    reported = compute_stats(gpus, specs, used).to_device_pools_obj()
    state = host_manager.HostState(name, name, uuidutils.generate_uuid())
    state.pci_stats = pci_stats.PciDeviceStats(None, stats=reported)
    return state


def pci_request(count, alias='h100'):
    return objects.InstancePCIRequest(
        count=count, alias_name=alias,
        request_id=uuidutils.generate_uuid(),
        spec=[{'vendor_id': VENDOR_ID, 'product_id': PRODUCT_ID}])


def request_spec(requests, **extra_specs):
    flavor = objects.Flavor(
        flavorid='gpu-flavor', name='gpu-flavor', extra_specs={
            key.replace('__', ':'): value
            for key, value in extra_specs.items()})
    return objects.RequestSpec(
        instance_uuid=uuidutils.generate_uuid(), flavor=flavor,
        pci_requests=objects.InstancePCIRequests(requests=requests),
        scheduler_hints={})


def candidate(requests_and_addresses):
    """Build an allocation candidate as nova-scheduler receives it.

    ``requests_and_addresses`` pairs each PCI request with the GPU addresses
    that the candidate allocates for it, one request group per device.
    """
    mappings = {'': ['11111111-1111-1111-1111-111111111111']}
    allocations = {}
    for request, addresses in requests_and_addresses:
        for index, address in enumerate(addresses):
            rp_uuid = rp_uuid_of(address)
            mappings['%s-%d' % (request.request_id, index)] = [rp_uuid]
            allocations[rp_uuid] = {
                'resources': {'CUSTOM_PCI_10DE_2330': 1}}
    return {'mappings': mappings, 'allocations': allocations}


def addresses_of(candidate_dict):
    """Return the GPU addresses that a candidate allocates, sorted."""
    by_rp = {rp_uuid_of(gpu[0]): gpu[0]
             for gpu in HGX_GPUS + PCIE_GPUS}
    return sorted(by_rp[rp] for rp in candidate_dict['allocations'])


class FilterTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(gpu_topology.CONF))
        self.conf.config(pci_in_placement=False, group='filter_scheduler')
        self.conf.config(topology_warning_interval=300,
                         group='sovereign_ai_scheduler')
        self.log = self.useFixture(fixtures.FakeLogger(
            name=gpu_topology.__name__, level=logging.DEBUG,
            format='%(levelname)s %(message)s'))
        # Warnings are rate-limited per filter class; start each test fresh.
        self.useFixture(fixtures.MockPatchObject(
            gpu_topology.GpuTopologyFilter, '_warnings',
            rate_limit.WarningLimiter(
                gpu_topology.LOG,
                lambda: gpu_topology.CONF.sovereign_ai_scheduler
                .topology_warning_interval)))
        self.filter = gpu_topology.GpuTopologyFilter()

    def warnings(self):
        return [line for line in self.log.output.splitlines()
                if line.startswith('WARNING ')]


class TestLoading(base.TestCase):

    def test_all_filters(self):
        classes = filters.all_filters()

        self.assertIn(gpu_topology.GpuTopologyFilter, classes)

    def test_run_on_rebuild(self):
        self.assertFalse(gpu_topology.GpuTopologyFilter.RUN_ON_REBUILD)


class TestLegacyMode(FilterTestCase):
    """pci_in_placement False: only the host's free pools are checked."""

    def test_no_pci_request(self):
        spec = request_spec([], sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(host([]), spec))

    def test_affinity_none(self):
        spec = request_spec([pci_request(8)])

        self.assertTrue(self.filter.host_passes(host(HGX_GPUS), spec))

    def test_each_level_on_hgx(self):
        cases = [
            # (level, count, passes)
            ('numa', 4, True),
            ('numa', 5, False),
            ('pcie_switch', 2, True),
            ('pcie_switch', 3, False),
            ('nvlink', 8, True),
        ]
        for level, count, passes in cases:
            spec = request_spec([pci_request(count)],
                                sovereign_ai__gpu_affinity=level)
            self.assertEqual(
                passes, self.filter.host_passes(host(HGX_GPUS), spec),
                '%s x%d' % (level, count))

    def test_nvlink_pairs(self):
        two = request_spec([pci_request(2)],
                           sovereign_ai__gpu_affinity='nvlink')
        four = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), two))
        self.assertFalse(self.filter.host_passes(host(PCIE_GPUS), four))

    def test_used_devices_split_domains(self):
        # One GPU is busy in each NVLink pair: four free GPUs, no free pair.
        used = {'0000:17:00.0', '0000:4b:00.0', '0000:98:00.0',
                '0000:ca:00.0'}
        state = host(PCIE_GPUS, used=used)
        nvlink = request_spec([pci_request(2)],
                              sovereign_ai__gpu_affinity='nvlink')
        switch = request_spec([pci_request(2)],
                              sovereign_ai__gpu_affinity='pcie_switch')

        self.assertFalse(self.filter.host_passes(state, nvlink))
        self.assertTrue(self.filter.host_passes(state, switch))

    def test_rejection_logged(self):
        spec = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertFalse(self.filter.host_passes(host(PCIE_GPUS), spec))

        self.assertIn('(host1, host1)', self.log.output)
        self.assertIn('fails GPU affinity nvlink', self.log.output)
        self.assertIn('count=4', self.log.output)

    def test_preferred_passes(self):
        spec = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlink',
                            sovereign_ai__gpu_affinity_policy='preferred')

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))

    def test_two_requests_share_no_device(self):
        # Two 2-GPU requests need two free pairs; only one pair is free.
        used = {'0000:17:00.0', '0000:4b:00.0', '0000:98:00.0'}
        state = host(PCIE_GPUS, used=used)
        first = pci_request(2, alias='h100-a')
        second = pci_request(2, alias='h100-b')
        one = request_spec([first], sovereign_ai__gpu_affinity='nvlink')
        both = request_spec([first, second],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, one))
        self.assertFalse(self.filter.host_passes(state, both))

    def test_single_device_request(self):
        # One device is always in one domain, even without tags.
        state = host(PCIE_GPUS, specs=device_spec(PCIE_GPUS, tags=False))
        spec = request_spec([pci_request(1)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, spec))
        self.assertEqual([], self.warnings())

    def test_neutron_port_request_ignored(self):
        port_request = objects.InstancePCIRequest(
            count=2, alias_name=None, request_id=uuidutils.generate_uuid(),
            spec=[{'physical_network': 'physnet1'}])
        spec = request_spec([port_request],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))

    def test_host_without_pci_stats(self):
        state = host_manager.HostState('cpu1', 'cpu1', None)
        required = request_spec([pci_request(2)],
                                sovereign_ai__gpu_affinity='numa')
        preferred = request_spec([pci_request(2)],
                                 sovereign_ai__gpu_affinity='numa',
                                 sovereign_ai__gpu_affinity_policy='preferred')

        self.assertIsNone(state.pci_stats)
        self.assertFalse(self.filter.host_passes(state, required))
        self.assertTrue(self.filter.host_passes(state, preferred))
        self.assertIn('reports no PCI devices', self.log.output)

    def test_rebuild_skips_filter(self):
        # The host has no fitting domain, but rebuild keeps the instance on
        # its host with the devices it already holds.
        spec = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlink')
        spec.scheduler_hints = {'_nova_check_type': ['rebuild']}

        boot = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertEqual(
            [], list(self.filter.filter_all([host(PCIE_GPUS)], boot)))
        self.assertEqual(
            1, len(list(self.filter.filter_all([host(PCIE_GPUS)], spec))))

    def test_legacy_claim_may_span_domains(self):
        # Nova's compute claim without Placement takes free devices in pool
        # order. The filter passes the host because switch sw1 has two free
        # GPUs, but the claim takes the free GPU of sw0 first.
        used = {'0000:2a:00.0'}
        state = host(HGX_GPUS, used=used)
        request = pci_request(2)
        spec = request_spec([request],
                            sovereign_ai__gpu_affinity='pcie_switch')

        self.assertTrue(self.filter.host_passes(state, spec))

        compute = compute_stats(HGX_GPUS, used=used)
        claimed = compute.consume_requests([request])
        switches = {dict((gpu[0], gpu[2]) for gpu in HGX_GPUS)[dev.address]
                    for dev in claimed}
        self.assertEqual(2, len(claimed))
        self.assertEqual({'sw0', 'sw1'}, switches)


class TestPlacementMode(FilterTestCase):
    """pci_in_placement True: allocation candidates are pruned."""

    def setUp(self):
        super().setUp()
        self.conf.config(pci_in_placement=True, group='filter_scheduler')

    def host_with_candidates(self, gpus, request, count, used=()):
        state = host(gpus, used=used)
        free = [gpu[0] for gpu in gpus if gpu[0] not in used]
        state.allocation_candidates = [
            candidate([(request, list(addresses))])
            for addresses in itertools.permutations(free, count)]
        return state

    def test_prunes_spanning_candidates(self):
        request = pci_request(2)
        state = self.host_with_candidates(PCIE_GPUS, request, 2)
        spec = request_spec([request], sovereign_ai__gpu_affinity='nvlink')

        self.assertEqual(56, len(state.allocation_candidates))
        self.assertTrue(self.filter.host_passes(state, spec))

        kept = [addresses_of(c) for c in state.allocation_candidates]
        pairs = {
            ('0000:17:00.0', '0000:31:00.0'),
            ('0000:4b:00.0', '0000:65:00.0'),
            ('0000:98:00.0', '0000:b1:00.0'),
            ('0000:ca:00.0', '0000:e3:00.0'),
        }
        # Each pair twice: Placement returns both orders of the two groups.
        self.assertEqual(8, len(kept))
        self.assertEqual(pairs, {tuple(k) for k in kept})

    def test_keeps_candidate_order(self):
        request = pci_request(4)
        state = self.host_with_candidates(HGX_GPUS, request, 4)
        expected = [
            c for c in state.allocation_candidates
            if len({HGX_GPUS[[g[0] for g in HGX_GPUS].index(a)][1]
                    for a in addresses_of(c)}) == 1]
        spec = request_spec([request], sovereign_ai__gpu_affinity='numa')

        self.assertTrue(self.filter.host_passes(state, spec))
        self.assertEqual(expected, state.allocation_candidates)
        self.assertEqual(2 * 24, len(expected))

    def test_no_fitting_candidate(self):
        request = pci_request(3)
        state = self.host_with_candidates(PCIE_GPUS, request, 3)
        spec = request_spec([request],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertFalse(self.filter.host_passes(state, spec))
        self.assertEqual([], state.allocation_candidates)
        self.assertIn('no allocation candidate keeps', self.log.output)

    def test_preferred_reorders(self):
        request = pci_request(2)
        state = self.host_with_candidates(PCIE_GPUS, request, 2)
        spec = request_spec([request], sovereign_ai__gpu_affinity='nvlink',
                            sovereign_ai__gpu_affinity_policy='preferred')

        self.assertTrue(self.filter.host_passes(state, spec))

        self.assertEqual(56, len(state.allocation_candidates))
        first = addresses_of(state.allocation_candidates[0])
        ninth = addresses_of(state.allocation_candidates[8])
        self.assertEqual(['0000:17:00.0', '0000:31:00.0'], first)
        self.assertNotIn(tuple(ninth), {
            ('0000:17:00.0', '0000:31:00.0'),
            ('0000:4b:00.0', '0000:65:00.0'),
            ('0000:98:00.0', '0000:b1:00.0'),
            ('0000:ca:00.0', '0000:e3:00.0')})

    def test_consumed_pool_drops_candidate(self):
        # Multi-create: the first instance took 0000:17:00.0 and its pool is
        # gone from the host state, but a stale candidate still names it.
        request = pci_request(2)
        state = host(PCIE_GPUS, used={'0000:17:00.0'})
        stale = candidate([(request, ['0000:17:00.0', '0000:31:00.0'])])
        fresh = candidate([(request, ['0000:4b:00.0', '0000:65:00.0'])])
        state.allocation_candidates = [stale, fresh]
        spec = request_spec([request], sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, spec))
        self.assertEqual([fresh], state.allocation_candidates)

    def test_candidate_without_pci_mapping(self):
        # A host that does not report PCI devices to Placement: candidates
        # carry no PCI groups, so the pool check decides.
        request = pci_request(2)
        state = host(PCIE_GPUS)
        state.allocation_candidates = [candidate([])]
        fits = request_spec([request], sovereign_ai__gpu_affinity='nvlink')
        too_big = request_spec([pci_request(4)],
                               sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, fits))
        self.assertEqual(1, len(state.allocation_candidates))
        self.assertFalse(self.filter.host_passes(state, too_big))
        self.assertEqual([], state.allocation_candidates)

    def test_two_requests_each_in_a_domain(self):
        first = pci_request(2, alias='h100-a')
        second = pci_request(2, alias='h100-b')
        state = host(PCIE_GPUS)
        good = candidate([(first, ['0000:17:00.0', '0000:31:00.0']),
                          (second, ['0000:98:00.0', '0000:b1:00.0'])])
        bad = candidate([(first, ['0000:17:00.0', '0000:31:00.0']),
                         (second, ['0000:98:00.0', '0000:ca:00.0'])])
        state.allocation_candidates = [bad, good]
        spec = request_spec([first, second],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, spec))
        self.assertEqual([good], state.allocation_candidates)


class TestBadInput(FilterTestCase):
    """Malformed tags and specs: a warning and a documented decision."""

    def test_untagged_gpu_excluded(self):
        specs = device_spec(PCIE_GPUS)
        # The first pair loses its nvlink_domain tag.
        for index in (0, 1):
            spec = jsonutils.loads(specs[index])
            del spec['nvlink_domain']
            specs[index] = jsonutils.dumps(spec)
        used = {'0000:4b:00.0', '0000:98:00.0', '0000:ca:00.0'}
        state = host(PCIE_GPUS, specs=specs, used=used)
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertFalse(self.filter.host_passes(state, spec))

        warnings = self.warnings()
        self.assertEqual(2, len(warnings))
        self.assertIn('Host host1: PCI device 0000:17:00.0 has '
                      'nvlink_domain = None', warnings[0])
        self.assertIn('Set the nvlink_domain tag', warnings[0])

    def test_gpu_without_numa_node(self):
        gpus = [HGX_GPUS[0][:1] + (None,) + HGX_GPUS[0][2:]] + HGX_GPUS[1:4]
        spec = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='numa')

        self.assertFalse(self.filter.host_passes(host(gpus), spec))

        warnings = self.warnings()
        self.assertEqual(1, len(warnings))
        self.assertIn('0000:18:00.0 has numa_node = None', warnings[0])
        self.assertIn('libvirt reports no NUMA node', warnings[0])

    def test_empty_tag(self):
        specs = [jsonutils.dumps(dict(jsonutils.loads(s), pcie_switch=' '))
                 for s in device_spec(HGX_GPUS)]
        state = host(HGX_GPUS, specs=specs)
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='pcie_switch')

        self.assertFalse(self.filter.host_passes(state, spec))
        self.assertIn("has pcie_switch = ' '", self.log.output)
        self.assertEqual(8, len(self.warnings()))

    def test_host_without_tags(self):
        # A host whose GPUs have no NVLink carries no nvlink_domain tag:
        # rejected without a warning.
        state = host(PCIE_GPUS, specs=device_spec(PCIE_GPUS, tags=False))
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertFalse(self.filter.host_passes(state, spec))
        self.assertEqual([], self.warnings())
        self.assertIn('8 of 8 matching PCI pools have no nvlink domain',
                      self.log.output)

    def test_warnings_rate_limited(self):
        specs = [jsonutils.dumps(dict(jsonutils.loads(s), pcie_switch=''))
                 for s in device_spec(HGX_GPUS)]
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='pcie_switch')

        for _ in range(3):
            self.filter.host_passes(host(HGX_GPUS, specs=specs), spec)

        warnings = self.warnings()
        self.assertEqual(8, len(warnings))

    def test_suppressed_count_reported(self):
        specs = [jsonutils.dumps(dict(jsonutils.loads(s), pcie_switch=''))
                 for s in device_spec(HGX_GPUS[:2])]
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='pcie_switch')
        state = host(HGX_GPUS[:2], specs=specs)

        self.filter.host_passes(state, spec)
        self.filter.host_passes(state, spec)
        self.conf.config(topology_warning_interval=0,
                         group='sovereign_ai_scheduler')
        self.filter.host_passes(state, spec)

        warnings = self.warnings()
        self.assertEqual(4, len(warnings))
        self.assertIn('1 more such warnings were suppressed', warnings[2])

    def test_invalid_extra_spec(self):
        spec = request_spec([pci_request(4)],
                            sovereign_ai__gpu_affinity='nvlnk')

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))

        warnings = self.warnings()
        self.assertEqual(1, len(warnings))
        self.assertIn('Flavor gpu-flavor', warnings[0])
        self.assertIn("'nvlnk'", warnings[0])
        self.assertIn('sovereign_ai:gpu_affinity', warnings[0])

    def test_spec_without_flavor(self):
        spec = objects.RequestSpec(
            pci_requests=objects.InstancePCIRequests(
                requests=[pci_request(2)]))

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))

    def test_spec_without_instance_uuid(self):
        # The rejection log names the instance; a spec without one must
        # still be rejected, not passed by the error handler.
        spec = objects.RequestSpec(
            flavor=objects.Flavor(
                flavorid='f',
                extra_specs={'sovereign_ai:gpu_affinity': 'nvlink'}),
            pci_requests=objects.InstancePCIRequests(
                requests=[pci_request(4)]))

        self.assertFalse(self.filter.host_passes(host(PCIE_GPUS), spec))
        self.assertEqual([], self.warnings())

    def test_flavor_without_extra_specs(self):
        spec = objects.RequestSpec(
            instance_uuid=uuidutils.generate_uuid(),
            flavor=objects.Flavor(flavorid='f'),
            pci_requests=objects.InstancePCIRequests(
                requests=[pci_request(4)]))

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))
        self.assertEqual([], self.warnings())

    def test_spec_without_pci_requests(self):
        spec = objects.RequestSpec(flavor=objects.Flavor(
            flavorid='f', extra_specs={'sovereign_ai:gpu_affinity': 'numa'}))

        self.assertTrue(self.filter.host_passes(host(PCIE_GPUS), spec))

    def test_unexpected_error_passes(self):
        # A pool without a count cannot come from Nova; the filter must
        # still not raise.
        state = host(PCIE_GPUS)
        for pool in state.pci_stats.pools:
            del pool['count']
        spec = request_spec([pci_request(2)],
                            sovereign_ai__gpu_affinity='nvlink')

        self.assertTrue(self.filter.host_passes(state, spec))
        self.assertIn('GpuTopologyFilter failed on host host1',
                      self.log.output)
        self.assertIn('KeyError', self.log.output)
