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

"""GpuTopologyFilter inside Nova, with GPUs tracked in Placement."""

from unittest import mock

from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client

from sovereign_ai.tests.functional.nova import base


class TestBoot(base.GpuServersTestBase):

    def test_hgx_levels(self):
        self.start_gpu_compute('hgx', base.HGX_GPUS)

        numa = self.boot(self.create_gpu_flavor(4, 'numa'))
        switch = self.boot(self.create_gpu_flavor(2, 'pcie_switch'))
        nvlink = self.boot(self.create_gpu_flavor(2, 'nvlink'))

        for server in (numa, switch, nvlink):
            self.assertEqual('hgx', server['OS-EXT-SRV-ATTR:host'])
        self.assert_gpus_share(numa, 'numa_node', 4)
        self.assert_gpus_share(switch, 'pcie_switch', 2)
        self.assertEqual('hgx-nvs0',
                         self.assert_gpus_share(nvlink, 'nvlink_domain', 2))
        self.assertPCIDeviceCounts('hgx', total=8, free=0)

    def test_hgx_eight_gpus(self):
        self.start_gpu_compute('hgx', base.HGX_GPUS)

        server = self.boot(self.create_gpu_flavor(8, 'nvlink'))

        self.assertEqual('hgx-nvs0',
                         self.assert_gpus_share(server, 'nvlink_domain', 8))

    def test_hgx_domains_too_small(self):
        self.start_gpu_compute('hgx', base.HGX_GPUS)

        numa = self.boot(self.create_gpu_flavor(8, 'numa'),
                         expected_state='ERROR')
        switch = self.boot(self.create_gpu_flavor(4, 'pcie_switch'),
                           expected_state='ERROR')

        # A NUMA node has four GPUs and a PCIe switch two.
        self.assertIn('No valid host', numa['fault']['message'])
        self.assertIn('No valid host', switch['fault']['message'])
        self.assertPCIDeviceCounts('hgx', total=8, free=8)
        anywhere = self.boot(self.create_gpu_flavor(8, 'none'))
        self.assertEqual(8, len(self.claimed_gpus(anywhere)))

    def test_pcie_levels(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)

        switch = self.boot(self.create_gpu_flavor(4, 'pcie_switch'))
        pair = self.boot(self.create_gpu_flavor(2, 'nvlink'))
        numa = self.boot(self.create_gpu_flavor(2, 'numa'))

        switch_name = self.assert_gpus_share(switch, 'pcie_switch', 4)
        pair_name = self.assert_gpus_share(pair, 'nvlink_domain', 2)
        self.assert_gpus_share(numa, 'numa_node', 2)
        # The pair and the last two GPUs are on the second switch, and the
        # last two GPUs form its other pair.
        pair_switch = {gpu.pcie_switch for gpu in self.claimed_gpus(pair)}
        self.assertNotIn(switch_name, pair_switch)
        numa_pairs = {gpu.nvlink_domain for gpu in self.claimed_gpus(numa)}
        self.assertEqual(1, len(numa_pairs))
        self.assertNotIn(pair_name, numa_pairs)

    def test_lands_on_fitting_host(self):
        self.start_gpu_compute('hgx', base.HGX_GPUS)
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        four_nvlink = self.create_gpu_flavor(4, 'nvlink')

        first = self.boot(four_nvlink)
        second = self.boot(four_nvlink)

        # The PCIe host has eight free GPUs but no NVLink domain of four.
        self.assertEqual('hgx', first['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('hgx', second['OS-EXT-SRV-ATTR:host'])
        third = self.boot(four_nvlink, expected_state='ERROR')
        self.assertIn('No valid host', third['fault']['message'])
        self.assertPCIDeviceCounts('pcie', total=8, free=8)

        anywhere = self.boot(self.create_gpu_flavor(4, 'none'))
        self.assertEqual('pcie', anywhere['OS-EXT-SRV-ATTR:host'])

    def test_no_valid_host(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)

        server = self.boot(self.create_gpu_flavor(4, 'nvlink'),
                           expected_state='ERROR')

        self.assertIn('No valid host', server['fault']['message'])
        self.assertPCIDeviceCounts('pcie', total=8, free=8)

        # With policy preferred the same host passes.
        preferred = self.boot(
            self.create_gpu_flavor(4, 'nvlink', 'preferred'))
        self.assertEqual(4, len(self.claimed_gpus(preferred)))

    def test_preferred_claims_fitting_devices(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        # Three single GPUs leave at least one NVLink pair whole, and make
        # some of Placement's candidates for two GPUs span two pairs.
        single = self.create_gpu_flavor(1)
        single_gpus = []
        for _ in range(3):
            single_gpus += self.claimed_gpus(self.boot(single))
        partly_used = {gpu.nvlink_domain for gpu in single_gpus}

        preferred = self.boot(
            self.create_gpu_flavor(2, 'nvlink', 'preferred'))

        pair = self.assert_gpus_share(preferred, 'nvlink_domain', 2)
        self.assertNotIn(pair, partly_used)

    def test_multi_create(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        flavor_id = self.create_gpu_flavor(2, 'nvlink')
        body = self._build_server(flavor_id=flavor_id, networks='none')
        body.update(min_count=4, max_count=4)

        self.api.post_server({'server': body})

        servers = self.api.get_servers()
        self.assertEqual(4, len(servers))
        pairs = set()
        for server in servers:
            server = self._wait_for_state_change(server, 'ACTIVE')
            pairs.add(self.assert_gpus_share(server, 'nvlink_domain', 2))
        self.assertEqual(
            {'pcie-pair0', 'pcie-pair1', 'pcie-pair2', 'pcie-pair3'}, pairs)

    def test_multi_create_too_many(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        flavor_id = self.create_gpu_flavor(2, 'nvlink')
        body = self._build_server(flavor_id=flavor_id, networks='none')
        body.update(min_count=5, max_count=5)

        self.api.post_server({'server': body})

        servers = self.api.get_servers()
        self.assertEqual(5, len(servers))
        for server in servers:
            server = self._wait_for_state_change(server, 'ERROR')
            self.assertIn('No valid host', server['fault']['message'])
        self.assertPCIDeviceCounts('pcie', total=8, free=8)

    def test_resize_to_more_gpus(self):
        self.flags(allow_resize_to_same_host=False)
        self.start_gpu_compute('hgx', base.HGX_GPUS)
        server = self.boot(self.create_gpu_flavor(2, 'numa'))
        self.assert_gpus_share(server, 'numa_node', 2)
        self.start_gpu_compute('interleaved', base.INTERLEAVED_GPUS)
        bigger = self.create_gpu_flavor(4, 'numa')

        # The fake libvirt cannot copy disks between hosts; Nova's own
        # resize tests replace this step the same way.
        with mock.patch('nova.virt.libvirt.driver.LibvirtDriver'
                        '.migrate_disk_and_power_off', return_value='{}'):
            server = self._resize_server(server, bigger)
            server = self._confirm_resize(server)

        self.assertEqual('interleaved', server['OS-EXT-SRV-ATTR:host'])
        # Nova 34 rebuilds the PCI requests of a move from the flavor,
        # without the Placement mapping, so the compute claims the first
        # free devices in pool order: here two on each NUMA node.
        claimed = self.claimed_gpus(server)
        self.assertEqual(
            ['0000:1b:00.0', '0000:43:00.0', '0000:52:00.0', '0000:61:00.0'],
            [gpu.address for gpu in claimed])
        self.assertEqual({0, 1}, {gpu.numa_node for gpu in claimed})
        # The scheduler allocated the four GPUs of one NUMA node, and the
        # compute's resource tracker then added the two claimed GPUs that
        # Placement had not allocated: six allocated for four in use.
        allocated = self.allocated_gpus(server)
        self.assertEqual(6, len(allocated), allocated)
        self.assertTrue(set(claimed) <= set(allocated), allocated)
        whole_nodes = [
            node for node in (0, 1)
            if all(gpu in allocated for gpu in base.INTERLEAVED_GPUS
                   if gpu.numa_node == node)]
        self.assertEqual(1, len(whole_nodes), allocated)

    def test_resize_no_fitting_domain(self):
        self.flags(allow_resize_to_same_host=True)
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        server = self.boot(self.create_gpu_flavor(2, 'nvlink'))
        bigger = self.create_gpu_flavor(4, 'nvlink')

        # No NVLink domain of four: the scheduler finds no host. Nova's
        # test harness turns RPC casts into calls, so the conductor's
        # NoValidHost reaches this API call instead of the instance action.
        error = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            server['id'], {'resize': {'flavorRef': bigger}})

        self.assertIn('NoValidHost', str(error))
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assert_gpus_share(server, 'nvlink_domain', 2)
        self.assertPCIDeviceCounts('pcie', total=8, free=6)

    def test_rebuild_full_host(self):
        self.start_gpu_compute('hgx', base.HGX_GPUS)
        server = self.boot(self.create_gpu_flavor(8, 'nvlink'))
        before = self.claimed_gpus(server)

        # A new image sends the rebuild through nova-scheduler. The host has
        # no free GPU left, so the filter would reject it if it ran.
        server = self._rebuild_server(
            server, nova_fixtures.GlanceFixture.image3['id'])

        self.assertEqual(before, self.claimed_gpus(server))
        self.assertEqual('hgx', server['OS-EXT-SRV-ATTR:host'])


class TestFlavorExtraSpecs(base.GpuServersTestBase):

    def test_valid_values(self):
        flavor_id = self._create_flavor(name='gpu', vcpu=1, memory_mb=512)

        for level in ('none', 'numa', 'pcie_switch', 'nvlink'):
            for policy in ('required', 'preferred'):
                specs = {'sovereign_ai:gpu_affinity': level,
                         'sovereign_ai:gpu_affinity_policy': policy}
                self.admin_api.post_extra_spec(
                    flavor_id, {'extra_specs': specs})
                self.assertEqual(
                    specs, self.admin_api.get_flavor(flavor_id)[
                        'extra_specs'])

    def test_invalid_values(self):
        flavor_id = self._create_flavor(name='gpu', vcpu=1, memory_mb=512)
        cases = [
            ('sovereign_ai:gpu_affinity', 'nvswitch',
             'none, numa, pcie_switch, nvlink'),
            ('sovereign_ai:gpu_affinity_policy', 'strict',
             'required, preferred'),
        ]

        for key, value, allowed in cases:
            error = self.assertRaises(
                client.OpenStackApiException,
                self.admin_api.post_extra_spec, flavor_id,
                {'extra_specs': {key: value}})
            self.assertEqual(400, error.response.status_code)
            message = error.response.text
            self.assertIn(key, message)
            self.assertIn(value, message)
            self.assertIn(allowed, message)
        self.assertEqual(
            {}, self.admin_api.get_flavor(flavor_id)['extra_specs'])

    def test_unknown_key(self):
        flavor_id = self._create_flavor(name='gpu', vcpu=1, memory_mb=512)

        error = self.assertRaises(
            client.OpenStackApiException,
            self.admin_api.post_extra_spec, flavor_id,
            {'extra_specs': {'sovereign_ai:gpu_afinity': 'numa'}})

        self.assertEqual(400, error.response.status_code)
        self.assertIn('sovereign_ai:gpu_afinity', error.response.text)


class TestLegacyMode(base.GpuServersTestBase):
    """[filter_scheduler] pci_in_placement False: only the host check."""

    PCI_IN_PLACEMENT = False

    def test_rejects_host(self):
        self.start_gpu_compute('pcie', base.PCIE_GPUS)

        server = self.boot(self.create_gpu_flavor(4, 'nvlink'),
                           expected_state='ERROR')

        self.assertIn('No valid host', server['fault']['message'])

    def test_claim_ignores_domains(self):
        # The known gap of this mode: the filter passes the host because
        # three NVLink pairs are free, but the compute's PCI claim takes
        # free devices in pool order, here one GPU from each of two pairs.
        self.start_gpu_compute('pcie', base.PCIE_GPUS)
        self.boot(self.create_gpu_flavor(1))

        server = self.boot(self.create_gpu_flavor(2, 'nvlink'))

        claimed = self.claimed_gpus(server)
        self.assertEqual(['0000:31:00.0', '0000:4b:00.0'],
                         [gpu.address for gpu in claimed])
        self.assertEqual({'pcie-pair0', 'pcie-pair1'},
                         {gpu.nvlink_domain for gpu in claimed})
