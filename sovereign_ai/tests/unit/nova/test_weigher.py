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

import json
import logging
import uuid

import fixtures
from nova import objects
from nova.pci import stats as pci_stats
from nova.pci import whitelist
from nova.scheduler import host_manager
from nova.scheduler import weights
from oslo_config import fixture as config_fixture

from sovereign_ai.gpu import fragmentation
from sovereign_ai.nova import rate_limit
from sovereign_ai.nova.weighers import gpu_fragmentation
from sovereign_ai.tests import base

objects.register_all()

CONF = gpu_fragmentation.CONF
H100 = ('10de', '2330')
A100 = ('10de', '20b2')

Shape = fragmentation.RequestShape


def hgx(nvlink='nv0', model=H100):
    """Return the GPUs of an 8-GPU NVLink board: 2 NUMA nodes, 4 switches."""
    return [{'numa_node': index // 4,
             'pcie_switch': '%s-sw%d' % (nvlink, index // 2),
             'nvlink_domain': nvlink,
             'model': model}
            for index in range(8)]


def pci_address(host_number, index):
    return '0000:%02x:%02x.0' % (0x10 + host_number, index)


class HostBuilder:
    """Build HostStates whose PCI pools come from real PciDevice objects."""

    def __init__(self):
        self._count = 0

    def host(self, name, gpus, used=(), placement=False, serialised=False):
        """Return a HostState with ``gpus`` (dicts); ``used`` are claimed.

        With ``placement``, every device gets a resource provider UUID the
        way nova-compute records it. With ``serialised``, the pools go
        through the compute node's pci_device_pools field, as
        nova-scheduler reads them, so they lose their device lists.
        """
        self._count += 1
        specs = []
        devices = []
        for index, gpu in enumerate(gpus):
            address = pci_address(self._count, index)
            vendor_id, product_id = gpu.get('model', H100)
            spec = {'vendor_id': vendor_id, 'product_id': product_id,
                    'address': address}
            for tag in ('pcie_switch', 'nvlink_domain'):
                if gpu.get(tag) is not None:
                    spec[tag] = gpu[tag]
            specs.append(json.dumps(spec))

            extra_info = {}
            if placement:
                extra_info['rp_uuid'] = self.provider(name, index)
            devices.append(objects.PciDevice(
                compute_node_id=self._count, address=address,
                vendor_id=vendor_id, product_id=product_id,
                dev_type='type-PCI', status='available',
                numa_node=gpu.get('numa_node'), parent_addr=None,
                extra_info=extra_info, request_id=None,
                dev_id='pci_' + address.replace(':', '_'),
                label='label_%s_%s' % (vendor_id, product_id),
                instance_uuid=None))

        stats = pci_stats.PciDeviceStats(
            None, dev_filter=whitelist.Whitelist(specs))
        for device in devices:
            stats.add_device(device)
        if placement:
            stats.populate_pools_metadata_from_assigned_devices()
        for index in used:
            stats.remove_device(devices[index])

        if serialised:
            stats = pci_stats.PciDeviceStats(
                None, stats=stats.to_device_pools_obj(),
                dev_filter=whitelist.Whitelist(specs))

        host = host_manager.HostState(name, name + '-node', 'cell1')
        host.pci_stats = stats
        return host

    @staticmethod
    def provider(name, index):
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, '%s-%d' % (name, index)))


def candidate(spec_obj, providers):
    """Return an allocation candidate taking one device from each provider."""
    request_id = spec_obj.pci_requests.requests[0].request_id
    return {
        'allocations': {
            provider: {'resources': {'CUSTOM_H100': 1}}
            for provider in providers},
        'mappings': {
            '%s-%d' % (request_id, index): [provider]
            for index, provider in enumerate(providers)},
    }


def request_spec(count=1, affinity=None, policy=None, model=H100,
                 instance_uuid=None, extra_requests=(), with_flavor=True):
    extra_specs = {'pci_passthrough:alias': 'gpu:%d' % count}
    if affinity is not None:
        extra_specs['sovereign_ai:gpu_affinity'] = affinity
    if policy is not None:
        extra_specs['sovereign_ai:gpu_affinity_policy'] = policy

    vendor_id, product_id = model
    requests = [objects.InstancePCIRequest(
        count=count, alias_name='gpu', request_id=str(uuid.uuid4()),
        spec=[{'vendor_id': vendor_id, 'product_id': product_id}])]
    requests.extend(extra_requests)
    spec_obj = objects.RequestSpec(
        instance_uuid=instance_uuid or str(uuid.uuid4()),
        pci_requests=objects.InstancePCIRequests(requests=requests))
    if with_flavor:
        spec_obj.flavor = objects.Flavor(
            flavorid='gpu.%d' % count, extra_specs=extra_specs)
    return spec_obj


class WeigherTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.config = self.useFixture(config_fixture.Config(CONF))
        self.builder = HostBuilder()
        self.weigher = gpu_fragmentation.GpuFragmentationWeigher()
        self.handler = weights.HostWeightHandler()
        self.log = self.useFixture(fixtures.FakeLogger(
            name=gpu_fragmentation.__name__, level=logging.DEBUG))

        # Each test starts from a fresh learned mix and warning table.
        gpu_fragmentation.reset_learned_mix()
        self.addCleanup(gpu_fragmentation.reset_learned_mix)
        self.useFixture(fixtures.MonkeyPatch(
            gpu_fragmentation.__name__ + '._WARNINGS',
            rate_limit.WarningLimiter(
                gpu_fragmentation.LOG,
                lambda: CONF.sovereign_ai_scheduler
                .gpu_fragmentation_warning_interval)))

    def set_mix(self, text):
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_request_mix=text)
        gpu_fragmentation.reset_learned_mix()

    def weigh(self, hosts, spec_obj):
        """Return (host name, weight) pairs in Nova's order, best first."""
        weighed = self.handler.get_weighed_objects(
            [self.weigher], hosts, spec_obj)
        return [(item.obj.host, item.weight) for item in weighed]

    def order(self, hosts, spec_obj):
        return [name for name, _weight in self.weigh(hosts, spec_obj)]


class TestLoading(WeigherTestCase):

    def test_weight_classes(self):
        classes = self.handler.get_matching_classes(
            ['sovereign_ai.nova.weighers.GpuFragmentationWeigher'])

        self.assertEqual([gpu_fragmentation.GpuFragmentationWeigher],
                         classes)

    def test_all_weighers(self):
        classes = self.handler.get_matching_classes(
            ['sovereign_ai.nova.weighers.all_weighers'])

        self.assertEqual([gpu_fragmentation.GpuFragmentationWeigher],
                         classes)


class TestPackingOrder(WeigherTestCase):

    def test_keeps_nvlink_domain_whole(self):
        self.set_mix('1:0.5,8@nvlink:0.5')
        hosts = [self.builder.host('whole', hgx()),
                 self.builder.host('broken', hgx(), used=(0, 1, 2))]

        self.assertEqual(['broken', 'whole'],
                         self.order(hosts, request_spec(1)))

    def test_several_hosts(self):
        # One GPU taken from each host, in pool order:
        # 'whole' breaks an idle board (+1600), 'pair' breaks the last
        # free switch pair (0), 'lone' takes a GPU alone on its switch
        # (-400), like 'lone2'.
        self.set_mix('1:0.6,2@pcie_switch:0.2,8@nvlink:0.2')
        hosts = [
            self.builder.host('whole', hgx()),
            self.builder.host('pair', hgx(), used=range(6)),
            self.builder.host('lone', hgx(), used=range(5)),
            self.builder.host('lone2', hgx(), used=(0,)),
        ]

        weighed = self.weigh(hosts, request_spec(1))

        self.assertEqual(['lone', 'lone2', 'pair', 'whole'],
                         [name for name, _weight in weighed])
        self.assertEqual(weighed[0][1], weighed[1][1])
        self.assertEqual(0.0, weighed[-1][1])

    def test_multi_gpu_request(self):
        # A 2-GPU NUMA request on 'fresh' leaves two GPUs on NUMA node 0
        # that no 4-GPU NUMA request can use. On 'partial' it takes the
        # two GPUs that were already stranded there.
        self.set_mix('2@numa:0.5,4@numa:0.5')
        hosts = [self.builder.host('fresh', hgx()),
                 self.builder.host('partial', hgx(), used=(2, 3))]

        self.assertEqual(
            ['partial', 'fresh'],
            self.order(hosts, request_spec(2, affinity='numa')))

    def test_matches_device_model(self):
        # The A100s of 'mixed' are not counted for an H100 request: the
        # H100 board of 'mixed' is whole, so it ranks like 'whole'.
        self.set_mix('1:0.5,8:0.5')
        hosts = [
            self.builder.host('whole', hgx()),
            self.builder.host('mixed', hgx('a100', A100) + hgx('h100')),
            self.builder.host('broken', hgx(), used=(0,)),
        ]

        weighed = dict(self.weigh(hosts, request_spec(1)))

        self.assertEqual(weighed['whole'], weighed['mixed'])
        self.assertGreater(weighed['broken'], weighed['whole'])

    def test_serialised_pools(self):
        self.set_mix('1:0.5,8@nvlink:0.5')
        spec_obj = request_spec(1)
        compute_side = self.builder.host('a', hgx(), used=(0, 1, 2))
        scheduler_side = self.builder.host('b', hgx(), used=(0, 1, 2),
                                           serialised=True)

        weight = self.weigher._weigh_object(compute_side, spec_obj)

        self.assertNotIn('devices', scheduler_side.pci_stats.pools[0])
        self.assertEqual(500.0, weight)
        self.assertEqual(
            weight, self.weigher._weigh_object(scheduler_side, spec_obj))

    def test_host_weight_formula(self):
        self.set_mix('1:0.5,8@nvlink:0.5')
        host = self.builder.host('broken', hgx(), used=(0, 1, 2))
        spec_obj = request_spec(1)
        request = gpu_fragmentation.gpu_request(spec_obj)
        gpu_fragmentation.observe(spec_obj, request)
        distribution = gpu_fragmentation.learned_mix().distribution()

        gpus, owners = gpu_fragmentation.host_gpus(host, request.pci_request)
        indices = gpu_fragmentation.predict_claimed_gpus(owners, 1)
        expected = -fragmentation.expected_increase(
            gpus, request.shape, distribution, indices=indices)

        self.assertEqual(5, len(gpus))
        self.assertEqual((0,), indices)
        self.assertEqual(expected,
                         self.weigher._weigh_object(host, spec_obj))


class TestPlacementCandidates(WeigherTestCase):

    def setUp(self):
        super().setUp()
        self.config.config(group='filter_scheduler', pci_in_placement=True)
        self.set_mix('1:0.5,2@pcie_switch:0.5')

    def host_with_candidates(self, name, spec_obj, used=(0,)):
        host = self.builder.host(name, hgx(), used=used, placement=True)
        free = [index for index in range(8) if index not in used]
        host.allocation_candidates = [
            candidate(spec_obj, [HostBuilder.provider(name, index)])
            for index in reversed(free)]
        return host

    def first_providers(self, host, spec_obj):
        request = spec_obj.pci_requests.requests[0]
        return gpu_fragmentation.candidate_providers(
            host.allocation_candidates[0], request)

    def test_best_candidate_first(self):
        spec_obj = request_spec(1)
        host = self.host_with_candidates('host1', spec_obj)
        other = self.host_with_candidates('host2', spec_obj, used=())

        self.weigh([host, other], spec_obj)

        # GPU 1 shares its switch with the busy GPU 0.
        self.assertEqual([HostBuilder.provider('host1', 1)],
                         self.first_providers(host, spec_obj))
        self.assertEqual(7, len(host.allocation_candidates))

    def test_host_weighs_as_best_candidate(self):
        spec_obj = request_spec(1)
        broken = self.host_with_candidates('broken', spec_obj)
        whole = self.host_with_candidates('whole', spec_obj, used=())

        self.assertEqual(['broken', 'whole'],
                         self.order([whole, broken], spec_obj))

    def test_unknown_provider_last(self):
        spec_obj = request_spec(1)
        host = self.host_with_candidates('host1', spec_obj)
        stale = candidate(spec_obj, [str(uuid.uuid4())])
        host.allocation_candidates.insert(0, stale)
        other = self.host_with_candidates('host2', spec_obj)

        self.weigh([host, other], spec_obj)

        self.assertIs(stale, host.allocation_candidates[-1])

    def test_scattered_candidate_after_domain(self):
        # With policy preferred, a pair on two switches sorts behind a
        # pair on one switch, even though it fragments less here.
        spec_obj = request_spec(2, affinity='pcie_switch',
                                policy='preferred')
        provider = HostBuilder.provider
        host = self.builder.host('host1', hgx(), used=(0, 2),
                                 placement=True)
        scattered = candidate(spec_obj, [provider('host1', 1),
                                         provider('host1', 3)])
        paired = candidate(spec_obj, [provider('host1', 4),
                                      provider('host1', 5)])
        host.allocation_candidates = [scattered, paired]
        other = self.host_with_candidates('host2', spec_obj)

        self.weigh([host, other], spec_obj)

        self.assertEqual([paired, scattered], host.allocation_candidates)

    def test_legacy_without_mappings(self):
        # Candidates that do not allocate the PCI request leave the order
        # alone, and the host is scored for Nova's pool order.
        spec_obj = request_spec(1)
        host = self.builder.host('host1', hgx(), used=(0,), placement=True)
        unrelated = [{'allocations': {}, 'mappings': {'': ['rp-a']}},
                     {'allocations': {}, 'mappings': {'': ['rp-b']}}]
        host.allocation_candidates = list(unrelated)
        other = self.builder.host('host2', hgx())

        self.weigh([host, other], spec_obj)

        self.assertEqual(unrelated, host.allocation_candidates)


class TestMultiplier(WeigherTestCase):

    def test_default(self):
        host = self.builder.host('host1', hgx())

        self.assertEqual(1.0, self.weigher.weight_multiplier(host))

    def test_from_config(self):
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_fragmentation_weight_multiplier=2.5)
        host = self.builder.host('host1', hgx())

        self.assertEqual(2.5, self.weigher.weight_multiplier(host))

    def test_from_aggregate(self):
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_fragmentation_weight_multiplier=2.5)
        host = self.builder.host('host1', hgx())
        host.aggregates = [
            objects.Aggregate(
                id=1, name='fast', hosts=['host1'],
                metadata={'gpu_fragmentation_weight_multiplier': '0.5'}),
            objects.Aggregate(
                id=2, name='big', hosts=['host1'],
                metadata={'gpu_fragmentation_weight_multiplier': '4'})]

        self.assertEqual(0.5, self.weigher.weight_multiplier(host))

    def test_invalid_aggregate_value(self):
        nova_log = self.useFixture(fixtures.FakeLogger(
            name='nova.scheduler.utils', level=logging.WARNING))
        host = self.builder.host('host1', hgx())
        host.aggregates = [objects.Aggregate(
            id=1, name='typo', hosts=['host1'],
            metadata={'gpu_fragmentation_weight_multiplier': 'high'})]

        self.assertEqual(1.0, self.weigher.weight_multiplier(host))
        self.assertIn("'high'", nova_log.output)

    def test_odd_aggregates(self):
        host = self.builder.host('host1', hgx())
        host.aggregates = [None]

        self.assertEqual(1.0, self.weigher.weight_multiplier(host))
        self.assertIn('aggregate metadata of host host1', self.log.output)

    def test_negative_reverses_order(self):
        self.set_mix('1:0.5,8@nvlink:0.5')
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_fragmentation_weight_multiplier=-1.0)
        hosts = [self.builder.host('whole', hgx()),
                 self.builder.host('broken', hgx(), used=(0, 1, 2))]

        self.assertEqual(['whole', 'broken'],
                         self.order(hosts, request_spec(1)))


class TestRequestMix(WeigherTestCase):

    def test_learned_mix_shifts_order(self):
        # 'pair' has two free GPUs on one switch, 'split' two GPUs on two
        # switches. For single-GPU requests alone they are equal; once
        # switch pairs are common, taking a GPU from 'split' costs less.
        pair_gpus = [{'pcie_switch': 'sw0'}, {'pcie_switch': 'sw0'}]
        split_gpus = [{'pcie_switch': 'sw0'}, {'pcie_switch': 'sw1'}]
        hosts = [self.builder.host('pair', pair_gpus),
                 self.builder.host('split', split_gpus)]

        weighed = self.weigh(hosts, request_spec(1))
        self.assertEqual(weighed[0][1], weighed[1][1])

        for _ in range(5):
            self.weigh(hosts, request_spec(2, affinity='pcie_switch'))

        self.assertEqual(['split', 'pair'],
                         self.order(hosts, request_spec(1)))

    def test_observed_once(self):
        hosts = [self.builder.host('host1', hgx()),
                 self.builder.host('host2', hgx())]
        spec_obj = request_spec(2, affinity='numa')

        self.weigh(hosts, spec_obj)
        self.weigh(hosts, spec_obj)

        self.assertEqual(
            {Shape(2, affinity='numa'): 1.0},
            gpu_fragmentation.learned_mix().weights())

    def test_operator_mix(self):
        self.set_mix('1:0.5,2:0.2,4:0.2,8@nvlink:0.1')

        distribution = dict(gpu_fragmentation.learned_mix().distribution())

        self.assertAlmostEqual(0.5, distribution[Shape(1)])
        self.assertAlmostEqual(0.1, distribution[Shape(8, affinity='nvlink')])

    def test_invalid_operator_mix(self):
        self.set_mix('1:0.5,eight:0.5')
        hosts = [self.builder.host('host1', hgx()),
                 self.builder.host('host2', hgx())]

        self.weigh(hosts, request_spec(1))

        self.assertEqual({Shape(1): 1.0},
                         gpu_fragmentation.learned_mix().weights())
        self.assertIn("gpu_request_mix '1:0.5,eight:0.5'", self.log.output)
        self.assertIn("'eight'", self.log.output)

    def test_half_life_option(self):
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_request_mix_half_life=1.0)
        gpu_fragmentation.reset_learned_mix()
        hosts = [self.builder.host('host1', hgx()),
                 self.builder.host('host2', hgx())]

        self.weigh(hosts, request_spec(8))
        self.weigh(hosts, request_spec(1))

        weights = gpu_fragmentation.learned_mix().weights()
        self.assertEqual(0.5, weights[Shape(8)])
        self.assertEqual(1.0, weights[Shape(1)])


class TestNeutralWeights(WeigherTestCase):

    def test_non_gpu_request(self):
        spec_obj = objects.RequestSpec(
            instance_uuid=str(uuid.uuid4()),
            flavor=objects.Flavor(flavorid='small', extra_specs={}),
            pci_requests=objects.InstancePCIRequests(requests=[]))
        hosts = [self.builder.host('whole', hgx()),
                 self.builder.host('broken', hgx(), used=(0,))]

        self.assertEqual([('whole', 0.0), ('broken', 0.0)],
                         self.weigh(hosts, spec_obj))
        self.assertEqual({}, gpu_fragmentation.learned_mix().weights())

    def test_neutron_port_request(self):
        port_request = objects.InstancePCIRequest(
            count=1, alias_name=None, request_id=str(uuid.uuid4()),
            spec=[{'physical_network': 'physnet1'}])
        spec_obj = request_spec(1)
        spec_obj.pci_requests.requests = [port_request]

        self.assertIsNone(gpu_fragmentation.gpu_request(spec_obj))

    def test_largest_flavor_request(self):
        nic_request = objects.InstancePCIRequest(
            count=1, alias_name='nic', request_id=str(uuid.uuid4()),
            spec=[{'vendor_id': '8086', 'product_id': '1572'}])
        spec_obj = request_spec(4, affinity='numa',
                                extra_requests=[nic_request])

        request = gpu_fragmentation.gpu_request(spec_obj)

        self.assertEqual(Shape(4, affinity='numa'), request.shape)
        self.assertEqual('required', request.policy)

    def test_host_without_pci_stats(self):
        self.set_mix('1:0.5,8:0.5')
        bare = host_manager.HostState('bare', 'bare-node', 'cell1')
        empty = self.builder.host('empty', [])
        broken = self.builder.host('broken', hgx(), used=(0,))

        weighed = dict(self.weigh([bare, empty, broken], request_spec(1)))
        self.weigh([bare, empty, broken], request_spec(1))

        self.assertEqual(0.0, self.weigher._weigh_object(bare,
                                                         request_spec(1)))
        self.assertEqual(weighed['bare'], weighed['empty'])
        self.assertGreater(weighed['broken'], weighed['bare'])
        self.assertEqual(
            1, self.log.output.count('Host bare reports no PCI device'))
        self.assertEqual(
            1, self.log.output.count('Host empty reports no PCI device'))

    def test_suppressed_count(self):
        self.config.config(group='sovereign_ai_scheduler',
                           gpu_fragmentation_warning_interval=0)
        bare = host_manager.HostState('bare', 'bare-node', 'cell1')

        self.weigher._weigh_object(bare, request_spec(1))
        self.weigher._weigh_object(bare, request_spec(1))

        self.assertEqual(
            2, self.log.output.count('Host bare reports no PCI device'))

    def test_malformed_tag(self):
        gpus = hgx()
        gpus[3]['nvlink_domain'] = '   '
        host = self.builder.host('odd', gpus)
        request = gpu_fragmentation.gpu_request(request_spec(1))

        found, _owners = gpu_fragmentation.host_gpus(
            host, request.pci_request)

        self.assertIsNone(found[3].nvlink_domain)
        self.assertEqual('nv0', found[2].nvlink_domain)
        self.assertIn("nvlink_domain = '   '", self.log.output)
        self.assertIn('Host odd', self.log.output)

    def test_invalid_affinity(self):
        spec_obj = request_spec(2, affinity='socket')

        request = gpu_fragmentation.gpu_request(spec_obj)

        self.assertEqual(Shape(2), request.shape)
        self.assertIn("'socket'", self.log.output)
        self.assertIn('Flavor gpu.2', self.log.output)

    def test_odd_input(self):
        host = self.builder.host('host1', hgx())
        zero_count = request_spec(1)
        zero_count.pci_requests.requests[0].count = 0
        cases = [object(), None, objects.RequestSpec(), zero_count]

        for weight_properties in cases:
            self.assertEqual(
                0.0, self.weigher._weigh_object(host, weight_properties))
        self.assertIn('cannot read the GPU request', self.log.output)
        self.assertIn('Invalid gpu_count 0', self.log.output)

    def test_spec_without_flavor(self):
        spec_obj = request_spec(2, with_flavor=False)

        request = gpu_fragmentation.gpu_request(spec_obj)

        self.assertEqual(Shape(2), request.shape)

    def test_odd_host(self):
        self.set_mix('1:0.5,8:0.5')
        host = self.builder.host('host1', hgx())
        host.pci_stats.pools[0]['count'] = 'many'
        odd_candidates = self.builder.host('host2', hgx())
        odd_candidates.allocation_candidates = [{'mappings': 'not a dict'}]

        weighed = self.weigh([host, odd_candidates], request_spec(1))

        self.assertEqual(0.0, dict(weighed)['host1'])
        self.assertIn('cannot score host host1', self.log.output)
        self.assertIn('cannot score host host2', self.log.output)
        self.assertEqual(
            [0.0], self.weigher.weigh_objects([object()], request_spec(1)))
