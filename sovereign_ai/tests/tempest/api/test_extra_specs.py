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

"""Flavor extra spec validation of the sovereign_ai namespace."""

from tempest.api.compute import base
from tempest import config
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

CONF = config.CONF


class FlavorExtraSpecsTest(base.BaseV2ComputeAdminTest):
    """Check that nova-api validates sovereign_ai:* extra specs.

    Nova validates extra specs from compute API microversion 2.86, with the
    validators that the sovereign_ai entry point registers in nova-api.
    """

    min_microversion = '2.86'

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.sovereign_ai_feature_enabled.extra_spec_validation:
            raise cls.skipException(
                '[sovereign_ai_feature_enabled] extra_spec_validation is '
                'off.')

    def setUp(self):
        super().setUp()
        self.flavor = self.create_flavor(ram=64, vcpus=1, disk=1)

    def _set(self, key, value):
        return self.admin_flavors_client.set_flavor_extra_spec(
            self.flavor['id'], **{key: value})['extra_specs']

    def _assert_rejected(self, key, value):
        exc = self.assertRaises(lib_exc.BadRequest, self._set, key, value)
        self.assertIn(key, str(exc))
        specs = self.admin_flavors_client.list_flavor_extra_specs(
            self.flavor['id'])['extra_specs']
        self.assertNotIn(key, specs)

    @decorators.idempotent_id('c5248beb-32ab-42dc-8a3e-11af9dc92938')
    def test_affinity_invalid(self):
        self._assert_rejected('sovereign_ai:gpu_affinity', 'rack')

    @decorators.idempotent_id('d4aed321-eb1c-4139-8f0d-a76be6c8c573')
    def test_affinity_wrong_case(self):
        self._assert_rejected('sovereign_ai:gpu_affinity', 'NVLink')

    @decorators.idempotent_id('5617190a-fb27-4db4-9871-d4313b0e4a71')
    def test_policy_invalid(self):
        self._assert_rejected('sovereign_ai:gpu_affinity_policy', 'always')

    @decorators.idempotent_id('822926a8-66d5-4101-ba2d-f5c2bb0ef345')
    def test_unknown_key(self):
        self._assert_rejected('sovereign_ai:gpu_afinity', 'numa')

    @decorators.idempotent_id('a7a6144f-e430-43cc-aac2-4b6499469f86')
    def test_affinity_levels_accepted(self):
        for level in ('none', 'numa', 'pcie_switch', 'nvlink'):
            specs = self._set('sovereign_ai:gpu_affinity', level)
            self.assertEqual(level, specs['sovereign_ai:gpu_affinity'])

    @decorators.idempotent_id('b7229ff0-3b6a-45d6-96ff-b65121acbb88')
    def test_policies_accepted(self):
        for policy in ('required', 'preferred'):
            specs = self._set('sovereign_ai:gpu_affinity_policy', policy)
            self.assertEqual(policy,
                             specs['sovereign_ai:gpu_affinity_policy'])
