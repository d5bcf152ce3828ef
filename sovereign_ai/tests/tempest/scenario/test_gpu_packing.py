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

"""Packing of GPU servers by GpuFragmentationWeigher."""

from tempest import config
from tempest.lib import decorators

from sovereign_ai.tests.tempest.scenario import base

CONF = config.CONF


@decorators.serial
class GpuPackingTest(base.GpuScenarioTest):
    """Boot and delete small GPU servers and check where they land.

    Placing a small request on an empty host would break that host's
    large domains, so the weigher must keep small servers on the host
    that already runs the first one while it has room.
    """

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.sovereign_ai_feature_enabled.gpu_fragmentation_weigher:
            raise cls.skipException(
                '[sovereign_ai_feature_enabled] gpu_fragmentation_weigher '
                'is off.')

    @decorators.idempotent_id('49054b67-6e4c-47b1-8f82-88e1886775f0')
    def test_small_servers_pack(self):
        one_gpu = self.create_gpu_flavor(1)
        two_gpus = self.create_gpu_flavor(2)

        first = self.boot(one_gpu)
        host = self.host_of(first)

        second = self.boot(one_gpu)
        self.assertEqual(host, self.host_of(second),
                         'The second 1-GPU server did not pack.')

        third = self.boot(two_gpus)
        self.assertEqual(host, self.host_of(third),
                         'The 2-GPU server did not pack.')

        self.delete(second)
        fourth = self.boot(one_gpu)
        self.assertEqual(host, self.host_of(fourth),
                         'The 1-GPU server booted after a delete did not '
                         'pack.')

        _, first_gpus = self.gpu_addresses(first)
        _, third_gpus = self.gpu_addresses(third)
        _, fourth_gpus = self.gpu_addresses(fourth)
        used = first_gpus + third_gpus + fourth_gpus
        self.assertEqual(len(used), len(set(used)),
                         'Servers share GPUs: %s.' % sorted(used))
