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

"""GPU layouts of emulated hosts.

A layout is written as one string, for example
``gpus=8,numa=2,switches=4,nvlink=1,bus=0x18,product=2330``: eight GPUs
spread over two NUMA nodes, four PCIe switches and one NVLink domain, on
PCI buses 0x18 to 0x1f. GPUs fill each domain in address order, so GPU
``i`` of ``n`` belongs to NUMA node ``i * numa // n``, and likewise for
switches and NVLink domains.

The fake compute driver reports the devices of a layout, the loopback
cloud writes the matching ``[pci] device_spec`` entries, and the Tempest
scenario tests read the domain of an allocated GPU from the same layout.
This module imports nothing from Nova or Tempest.
"""

import collections
import json

NVIDIA_VENDOR_ID = '10de'

# H100 SXM5 80GB.
DEFAULT_PRODUCT_ID = '2330'

_KEYS = ('gpus', 'numa', 'switches', 'nvlink', 'bus', 'product')

_DEFAULTS = {
    'gpus': 8, 'numa': 2, 'switches': 4, 'nvlink': 1, 'bus': 0x18,
    'product': DEFAULT_PRODUCT_ID,
}

Gpu = collections.namedtuple(
    'Gpu', ['address', 'numa_node', 'pcie_switch', 'nvlink_domain'])


class Layout(collections.namedtuple(
        'Layout', ['gpus', 'numa', 'switches', 'nvlink', 'bus', 'product'])):
    """The GPU topology of one emulated host."""

    __slots__ = ()

    def devices(self):
        """Return the host's GPUs as :class:`Gpu` tuples, in address order."""
        result = []
        for index in range(self.gpus):
            result.append(Gpu(
                address='0000:%02x:00.0' % (self.bus + index),
                numa_node=index * self.numa // self.gpus,
                pcie_switch='sw%d' % (index * self.switches // self.gpus),
                nvlink_domain='nvl%d' % (index * self.nvlink // self.gpus)))
        return result

    def domain_size(self, level):
        """Return how many GPUs share one domain at an affinity level."""
        per_level = {
            'none': 1, 'numa': self.numa, 'pcie_switch': self.switches,
            'nvlink': self.nvlink,
        }
        if level not in per_level:
            raise ValueError(
                'Invalid GPU affinity level %r: expected one of %s.'
                % (level, ', '.join(per_level)))
        return self.gpus // per_level[level]

    def domain_of(self, address, level):
        """Return the domain of the GPU at ``address`` at ``level``.

        :raises KeyError: when the layout has no GPU at ``address``.
        """
        for gpu in self.devices():
            if gpu.address != address:
                continue
            if level == 'none':
                return 'host'
            if level == 'numa':
                return gpu.numa_node
            if level == 'pcie_switch':
                return gpu.pcie_switch
            if level == 'nvlink':
                return gpu.nvlink_domain
            raise ValueError('Invalid GPU affinity level %r.' % level)
        raise KeyError('No GPU at PCI address %s in layout %s.'
                       % (address, self.format()))

    def format(self):
        """Return the layout as the string that :func:`parse` reads."""
        return ('gpus=%d,numa=%d,switches=%d,nvlink=%d,bus=0x%02x,product=%s'
                % (self.gpus, self.numa, self.switches, self.nvlink, self.bus,
                   self.product))

    def pci_passthrough_devices(self):
        """Return the device dicts that a virt driver reports to Nova."""
        return [{
            'address': gpu.address,
            'vendor_id': NVIDIA_VENDOR_ID,
            'product_id': self.product,
            'dev_type': 'type-PCI',
            'status': 'available',
            'parent_addr': None,
            'numa_node': gpu.numa_node,
            'label': 'label_%s_%s' % (NVIDIA_VENDOR_ID, self.product),
        } for gpu in self.devices()]

    def device_specs(self):
        """Return ``[pci] device_spec`` values that tag each GPU's domains.

        Each value is a JSON string, one per GPU, as nova.conf takes them.
        """
        return [json.dumps({
            'vendor_id': NVIDIA_VENDOR_ID,
            'product_id': self.product,
            'address': gpu.address,
            'pcie_switch': gpu.pcie_switch,
            'nvlink_domain': gpu.nvlink_domain,
        }, sort_keys=True) for gpu in self.devices()]


def _parse_int(key, text):
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(
            'Invalid GPU layout value %s=%r: expected an integer.'
            % (key, text))


def parse(text):
    """Parse a layout string such as ``gpus=8,numa=2,switches=4,nvlink=1``.

    Missing keys take the defaults of an 8-GPU host with 2 NUMA nodes,
    4 PCIe switches and 1 NVLink domain on buses from 0x18, product 2330.

    :raises ValueError: on an unknown key, a non-integer count, or counts
        that do not divide the GPUs into equal domains. The message names
        the value and the rule.
    """
    values = dict(_DEFAULTS)
    for item in (text or '').split(','):
        item = item.strip()
        if not item:
            continue

        key, sep, value = item.partition('=')
        key = key.strip()
        value = value.strip()
        if not sep or key not in _KEYS:
            raise ValueError(
                'Invalid GPU layout item %r: expected key=value with a key '
                'among %s.' % (item, ', '.join(_KEYS)))

        if key == 'product':
            values[key] = value.lower()
        else:
            values[key] = _parse_int(key, value)

    layout = Layout(**values)
    _validate(layout)
    return layout


def _validate(layout):
    if layout.gpus < 1:
        raise ValueError('Invalid GPU layout: gpus=%d, expected at least 1.'
                         % layout.gpus)

    for key in ('numa', 'switches', 'nvlink'):
        count = getattr(layout, key)
        if count < 1 or layout.gpus % count:
            raise ValueError(
                'Invalid GPU layout: %s=%d does not divide gpus=%d into '
                'equal domains.' % (key, count, layout.gpus))

    # A PCIe switch hangs off one CPU socket, so it cannot span NUMA nodes.
    if layout.switches % layout.numa:
        raise ValueError(
            'Invalid GPU layout: switches=%d is not a multiple of numa=%d, '
            'so a PCIe switch would span NUMA nodes.'
            % (layout.switches, layout.numa))

    if layout.bus < 0 or layout.bus + layout.gpus > 0x100:
        raise ValueError(
            'Invalid GPU layout: buses 0x%02x to 0x%02x do not fit in the '
            'PCI bus range 0x00-0xff.'
            % (layout.bus, layout.bus + layout.gpus - 1))

    if len(layout.product) != 4 or not all(
            c in '0123456789abcdef' for c in layout.product):
        raise ValueError(
            'Invalid GPU layout: product=%r, expected 4 hex digits such '
            'as 2330.' % layout.product)


def parse_hosts(text):
    """Parse ``host:layout;host:layout`` into a dict of host to Layout."""
    result = {}
    for item in (text or '').split(';'):
        item = item.strip()
        if not item:
            continue

        host, sep, layout_text = item.partition(':')
        if not sep or not host.strip():
            raise ValueError(
                'Invalid GPU host layout %r: expected host:layout.' % item)
        result[host.strip()] = parse(layout_text)
    return result
