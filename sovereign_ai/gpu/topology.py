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

"""GPU affinity levels and the topology domains of a host's GPUs.

A flavor requests that its GPUs share a domain with the extra specs
``sovereign_ai:gpu_affinity`` and ``sovereign_ai:gpu_affinity_policy``.
The domain of a GPU at each level comes from what Nova already stores about
it: ``numa_node`` for ``numa``, and the operator's ``[pci] device_spec``
tags ``pcie_switch`` and ``nvlink_domain`` for the other two levels.

This module imports nothing from Nova, so the scheduler plugins, the
simulator and the tests share it.
"""

import typing

AFFINITY_NONE = 'none'
AFFINITY_NUMA = 'numa'
AFFINITY_PCIE_SWITCH = 'pcie_switch'
AFFINITY_NVLINK = 'nvlink'

# From the loosest to the strictest level. 'none' puts the GPUs anywhere on
# the host.
AFFINITY_LEVELS = (
    AFFINITY_NONE, AFFINITY_NUMA, AFFINITY_PCIE_SWITCH, AFFINITY_NVLINK)

POLICY_REQUIRED = 'required'
POLICY_PREFERRED = 'preferred'
AFFINITY_POLICIES = (POLICY_REQUIRED, POLICY_PREFERRED)

EXTRA_SPEC_AFFINITY = 'sovereign_ai:gpu_affinity'
EXTRA_SPEC_AFFINITY_POLICY = 'sovereign_ai:gpu_affinity_policy'

DEFAULT_AFFINITY = AFFINITY_NONE
DEFAULT_POLICY = POLICY_REQUIRED

# The [pci] device_spec tag that names the domain of a GPU at each level
# that Nova does not detect by itself.
DEVICE_SPEC_TAG_BY_LEVEL = {
    AFFINITY_PCIE_SWITCH: 'pcie_switch',
    AFFINITY_NVLINK: 'nvlink_domain',
}

# The single domain of every GPU at level 'none': the whole host.
HOST_DOMAIN = 'host'


class AffinityRequest(typing.NamedTuple):
    """The GPU affinity that a flavor requests."""

    level: str
    policy: str

    @property
    def is_required(self):
        """Whether a host that cannot meet ``level`` must be rejected."""
        return self.level != AFFINITY_NONE and self.policy == POLICY_REQUIRED


def _read_choice(extra_specs, key, allowed, default):
    value = extra_specs.get(key)
    if value is None:
        return default

    if value not in allowed:
        raise ValueError(
            'Invalid value %r for extra spec %s: expected one of %s.'
            % (value, key, ', '.join(allowed)))
    return value


def parse_affinity(extra_specs):
    """Read the GPU affinity request from a flavor's extra specs.

    A missing key takes its default: level ``none``, policy ``required``.
    Values are matched exactly, as the flavor API validator does.

    :param extra_specs: a mapping of extra spec names to string values.
    :returns: an :class:`AffinityRequest`.
    :raises ValueError: when a value is not one of the allowed ones; the
        message names the key, the value and the allowed values.
    """
    level = _read_choice(
        extra_specs, EXTRA_SPEC_AFFINITY, AFFINITY_LEVELS, DEFAULT_AFFINITY)
    policy = _read_choice(
        extra_specs, EXTRA_SPEC_AFFINITY_POLICY, AFFINITY_POLICIES,
        DEFAULT_POLICY)
    return AffinityRequest(level, policy)


def _numa_domain(value):
    # bool is a subclass of int but never a NUMA node id.
    if isinstance(value, bool):
        return None

    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        return int(value)

    if isinstance(value, int) and value >= 0:
        return value
    return None


def _tag_domain(value):
    # Tags reach nova-scheduler as strings, and Nova matches them without
    # regard to case, so 'SW0' and 'sw0' name the same domain. A JSON number
    # in [pci] device_spec counts as its decimal string.
    if isinstance(value, bool):
        return None

    if isinstance(value, int):
        return str(value)

    if isinstance(value, str):
        return value.strip().lower() or None
    return None


def domain_of(attributes, level):
    """Return the domain of a GPU at an affinity level.

    :param attributes: a PCI pool dict from ``host_state.pci_stats.pools``,
        or any mapping with ``numa_node`` and the device spec tag keys.
    :param level: one of :data:`AFFINITY_LEVELS`.
    :returns: :data:`HOST_DOMAIN` for ``none``, the NUMA node id (an int)
        for ``numa``, and the tag string, stripped and in lower case, for
        ``pcie_switch`` and ``nvlink``. None when the attributes lack that
        information: a missing or negative ``numa_node``, a missing or empty
        tag, or a value of another type (a list, for example).
    :raises ValueError: when ``level`` is not an affinity level.
    """
    if level == AFFINITY_NONE:
        return HOST_DOMAIN

    if level == AFFINITY_NUMA:
        return _numa_domain(attributes.get('numa_node'))

    tag = DEVICE_SPEC_TAG_BY_LEVEL.get(level)
    if tag is None:
        raise ValueError(
            'Invalid GPU affinity level %r: expected one of %s.'
            % (level, ', '.join(AFFINITY_LEVELS)))
    return _tag_domain(attributes.get(tag))


def attribute_of(level):
    """Return the pool key that contains the domain at ``level``.

    Log and error messages use it to name what is missing. Level ``none``
    reads no attribute, so it returns None.
    """
    if level == AFFINITY_NUMA:
        return 'numa_node'
    return DEVICE_SPEC_TAG_BY_LEVEL.get(level)
