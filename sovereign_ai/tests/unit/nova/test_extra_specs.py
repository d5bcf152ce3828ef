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

import subprocess
import sys

from nova.api.validation.extra_specs import base as validator_base
from nova.api.validation.extra_specs import validators
from nova import exception

from sovereign_ai.gpu import topology
from sovereign_ai.nova import extra_specs
from sovereign_ai.tests import base


class TestExtraSpecValidators(base.TestCase):

    def setUp(self):
        super().setUp()
        # Load every validator the way nova-api does, through the
        # nova.api.extra_spec_validators entry points.
        validators.load_validators()

    def test_registered_through_entry_point(self):
        names = {v.name for v in extra_specs.register()}

        self.assertEqual({'sovereign_ai:gpu_affinity',
                          'sovereign_ai:gpu_affinity_policy'}, names)
        for name in names:
            self.assertIn(name, validators.VALIDATORS)
            self.assertIsInstance(validators.VALIDATORS[name],
                                  validator_base.ExtraSpecValidator)
        self.assertIn('sovereign_ai', validators.NAMESPACES)

    def test_valid_values(self):
        for level in topology.AFFINITY_LEVELS:
            validators.validate('sovereign_ai:gpu_affinity', level)
        for policy in topology.AFFINITY_POLICIES:
            validators.validate('sovereign_ai:gpu_affinity_policy', policy)

    def test_invalid_level(self):
        error = self.assertRaises(
            exception.ValidationError, validators.validate,
            'sovereign_ai:gpu_affinity', 'nvswitch')

        message = error.format_message()
        self.assertIn("'nvswitch'", message)
        self.assertIn("'sovereign_ai:gpu_affinity'", message)
        self.assertIn('none, numa, pcie_switch, nvlink', message)

    def test_invalid_policy(self):
        error = self.assertRaises(
            exception.ValidationError, validators.validate,
            'sovereign_ai:gpu_affinity_policy', 'strict')

        message = error.format_message()
        self.assertIn("'strict'", message)
        self.assertIn("'sovereign_ai:gpu_affinity_policy'", message)
        self.assertIn('required, preferred', message)

    def test_values_case_sensitive(self):
        self.assertRaises(
            exception.ValidationError, validators.validate,
            'sovereign_ai:gpu_affinity', 'NUMA')

    def test_unknown_key_in_namespace(self):
        error = self.assertRaises(
            exception.ValidationError, validators.validate,
            'sovereign_ai:gpu_afinity', 'numa')

        self.assertIn('sovereign_ai:gpu_afinity', error.format_message())

    def test_matches_topology_parser(self):
        # The API and the filter must accept the same values.
        for validator in extra_specs.register():
            for value in validator.value['enum']:
                topology.parse_affinity({validator.name: value})

    def test_import_is_light(self):
        # nova-api imports this module at startup: beyond Nova's validator
        # base, it may load only the package itself and the topology module.
        code = (
            'import sys\n'
            'import nova.api.validation.extra_specs.base\n'
            'before = set(sys.modules)\n'
            'import sovereign_ai.nova.extra_specs\n'
            'print(" ".join(sorted(set(sys.modules) - before)))\n')
        output = subprocess.run(
            [sys.executable, '-W', 'ignore', '-c', code],
            check=True, capture_output=True, text=True).stdout

        self.assertEqual(
            ['sovereign_ai', 'sovereign_ai.gpu', 'sovereign_ai.gpu.topology',
             'sovereign_ai.nova', 'sovereign_ai.nova.extra_specs'],
            output.split())
