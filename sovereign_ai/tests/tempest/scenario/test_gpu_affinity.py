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

"""GPU affinity of servers booted on the GPU hosts.

Each test boots one server with 1, 2, 4 or 8 GPUs at one affinity level
with policy required. Where an empty domain of that size exists on some
host of ``[sovereign_ai] gpu_hosts``, the server must become ACTIVE on
such a host with all its GPUs in one domain. Elsewhere the boot must fail
with NoValidHost.
"""

from tempest.lib import decorators

from sovereign_ai.tests.tempest.scenario import base


@decorators.serial
class GpuAffinityTest(base.GpuScenarioTest):
    """Boot GPU servers at each affinity level and check their GPUs."""

    def _check(self, count, level):
        if level != 'none':
            self.require_topology_filter()

        flavor = self.create_gpu_flavor(count, level=level,
                                        policy='required')
        hosts = self.fitting_hosts(count, level)
        if not hosts:
            self.assert_no_valid_host(flavor)
            return

        server_id = self.boot(flavor)
        host, _ = self.assert_gpus(server_id, count, level)
        self.assertIn(host, hosts,
                      'A %d-GPU %s server went to %s; only %s have such '
                      'a domain.' % (count, level, host, hosts))

    @decorators.idempotent_id('5bd78ce0-af9c-4677-82ba-04e0fd649676')
    def test_none_1_gpus(self):
        self._check(1, 'none')

    @decorators.idempotent_id('cbf05dd9-e4e6-4713-a1cf-73aae6f24488')
    def test_none_2_gpus(self):
        self._check(2, 'none')

    @decorators.idempotent_id('7c26df82-6301-4c10-8a22-4a66338001a8')
    def test_none_4_gpus(self):
        self._check(4, 'none')

    @decorators.idempotent_id('a6819879-a2fd-4538-9e0f-d24cd28a5006')
    def test_none_8_gpus(self):
        self._check(8, 'none')

    @decorators.idempotent_id('ca599e5e-3160-443f-9f19-d684056c3275')
    def test_numa_1_gpus(self):
        self._check(1, 'numa')

    @decorators.idempotent_id('2222c49b-b3c0-4d8c-b7c7-94562b527911')
    def test_numa_2_gpus(self):
        self._check(2, 'numa')

    @decorators.idempotent_id('6ddb8998-8c4c-4f45-b1a9-7519c03fd2c2')
    def test_numa_4_gpus(self):
        self._check(4, 'numa')

    @decorators.idempotent_id('cfb86b81-d143-49c2-a95e-bf22ac496877')
    def test_numa_8_gpus(self):
        self._check(8, 'numa')

    @decorators.idempotent_id('81e86115-104e-43fc-b6b4-c696c8eef845')
    def test_pcie_switch_1_gpus(self):
        self._check(1, 'pcie_switch')

    @decorators.idempotent_id('274a5068-4b89-4c5a-b335-c4cbb97997af')
    def test_pcie_switch_2_gpus(self):
        self._check(2, 'pcie_switch')

    @decorators.idempotent_id('3bd3bd2b-7076-4fb3-9af5-4f52803e204e')
    def test_pcie_switch_4_gpus(self):
        self._check(4, 'pcie_switch')

    @decorators.idempotent_id('edc29dd3-4d3b-478e-88a3-5da4a4d66e2d')
    def test_pcie_switch_8_gpus(self):
        self._check(8, 'pcie_switch')

    @decorators.idempotent_id('fa4d4f6e-8592-4428-9616-6da70b8972c0')
    def test_nvlink_1_gpus(self):
        self._check(1, 'nvlink')

    @decorators.idempotent_id('05f80270-a49e-4be8-b5bc-20fa0b5e47c1')
    def test_nvlink_2_gpus(self):
        self._check(2, 'nvlink')

    @decorators.idempotent_id('1e6c427c-34b3-4f89-896d-f363094ecbdd')
    def test_nvlink_4_gpus(self):
        self._check(4, 'nvlink')

    @decorators.idempotent_id('c7252f5f-7ede-4e7f-ac06-ff6ffd829572')
    def test_nvlink_8_gpus(self):
        self._check(8, 'nvlink')

    @decorators.idempotent_id('80ae02ad-a5ff-4c35-8072-94dc8edc99e4')
    def test_preferred_falls_back(self):
        # No host has a PCIe switch with 8 GPUs, so only the preferred
        # policy lets this boot succeed, on any host with 8 free GPUs.
        self.require_topology_filter()
        flavor = self.create_gpu_flavor(8, level='pcie_switch',
                                        policy='preferred')
        server_id = self.boot(flavor)
        self.assert_gpus(server_id, 8, 'none')
