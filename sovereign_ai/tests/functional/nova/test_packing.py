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

"""GpuTopologyFilter and GpuFragmentationWeigher together in Nova."""

import collections

try:
    from sovereign_ai.nova.weighers import gpu_fragmentation
except ImportError as error:
    gpu_fragmentation = None
    IMPORT_ERROR = error
else:
    IMPORT_ERROR = None

from sovereign_ai.tests.functional.nova import base


class TestPacking(base.GpuServersTestBase):
    """Two PCIe hosts with NVLink pairs, filled one GPU at a time."""

    def setUp(self):
        if gpu_fragmentation is None:
            self.skipTest('GpuFragmentationWeigher cannot be imported: %s'
                          % IMPORT_ERROR)

        self.flags(
            weight_classes=[
                'nova.scheduler.weights.all_weighers',
                'sovereign_ai.nova.weighers.GpuFragmentationWeigher',
            ],
            group='filter_scheduler')
        # Nova's default weighers (RAM, CPU, disk and others, each with
        # multiplier 1.0) spread instances. 10 makes fragmentation decide,
        # as the weigher's guide advises raising it above them.
        self.flags(gpu_fragmentation_weight_multiplier=10.0,
                   gpu_request_mix='1:0.5,2@nvlink:0.5',
                   group='sovereign_ai_scheduler')
        # The learned mix is process-wide; start each test from the option.
        gpu_fragmentation.reset_learned_mix()
        self.addCleanup(gpu_fragmentation.reset_learned_mix)

        super().setUp()

        # Both hosts have the same PCI addresses, so one [pci] device_spec
        # tags them alike.
        self.start_gpu_compute('pcie-a', base.PCIE_GPUS)
        self.start_gpu_compute('pcie-b', base.PCIE_GPUS)

    def used_gpus_by_pair(self, servers):
        used = collections.Counter()
        for server in servers:
            host = server['OS-EXT-SRV-ATTR:host']
            for gpu in self.claimed_gpus(server):
                used[(host, gpu.nvlink_domain)] += 1
        return used

    def test_singles_fill_broken_pairs(self):
        single = self.create_gpu_flavor(1)
        pair = self.create_gpu_flavor(2, 'nvlink')
        servers = []

        for boot in range(6):
            servers.append(self.boot(single))
            used = self.used_gpus_by_pair(servers)
            broken = [key for key, count in used.items() if count == 1]
            # Every second single GPU completes the pair that the one
            # before it broke, on the same host.
            self.assertEqual((boot + 1) % 2, len(broken), used)

        first_host = servers[0]['OS-EXT-SRV-ATTR:host']
        self.assertEqual(first_host, servers[1]['OS-EXT-SRV-ATTR:host'])

        # Five whole pairs are left over the two hosts; a 2-GPU NVLink
        # server takes one of them whole.
        paired = self.boot(pair)
        self.assert_gpus_share(paired, 'nvlink_domain', 2)
