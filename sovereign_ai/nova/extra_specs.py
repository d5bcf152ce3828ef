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

"""Flavor extra spec validators for the ``sovereign_ai`` namespace.

nova-api loads :func:`register` through the ``nova.api.extra_spec_validators``
entry point, so from compute API microversion 2.86 the flavor API rejects an
invalid value with HTTP 400. Once these validators are loaded, Nova also
rejects any other ``sovereign_ai:`` key as unknown.

nova-api imports this module at startup: it imports only Nova's validator
base class and the Nova-free topology constants.
"""

import dataclasses

from nova.api.validation.extra_specs import base
from nova import exception

from sovereign_ai.gpu import topology


@dataclasses.dataclass
class ChoiceValidator(base.ExtraSpecValidator):
    """An extra spec validator whose error names the key and allowed values.

    Nova's own enum check reports only the value, which leaves a user who
    sets several extra specs at once guessing which one failed.
    """

    def validate(self, name, value):
        allowed = self.value['enum']
        if value not in allowed:
            raise exception.ValidationError(
                "Validation failed; invalid value '%s' for extra spec '%s': "
                "expected one of %s." % (value, name, ', '.join(allowed)))
        super().validate(name, value)


EXTRA_SPEC_VALIDATORS = [
    ChoiceValidator(
        name=topology.EXTRA_SPEC_AFFINITY,
        description=(
            'The topology domain that all PCI devices of each '
            'pci_passthrough:alias request must share. GpuTopologyFilter '
            'enforces it.'
        ),
        value={
            'type': str,
            'description': (
                'none: anywhere on the host (default); numa: one NUMA node; '
                'pcie_switch: one PCIe switch, from the pcie_switch tag in '
                '[pci] device_spec; nvlink: one NVLink domain, from the '
                'nvlink_domain tag in [pci] device_spec.'
            ),
            'enum': list(topology.AFFINITY_LEVELS),
        },
    ),
    ChoiceValidator(
        name=topology.EXTRA_SPEC_AFFINITY_POLICY,
        description=(
            'Whether GpuTopologyFilter rejects hosts that cannot meet '
            'sovereign_ai:gpu_affinity.'
        ),
        value={
            'type': str,
            'description': (
                'required: reject such hosts (default); preferred: accept '
                'them, and on hosts with a fitting domain claim devices '
                'inside it when PCI devices are tracked in Placement.'
            ),
            'enum': list(topology.AFFINITY_POLICIES),
        },
    ),
]


def register():
    """Return the validators that nova-api adds to its registry."""
    return EXTRA_SPEC_VALIDATORS
