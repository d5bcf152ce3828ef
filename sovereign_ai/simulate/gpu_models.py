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

"""GPU models of the fleet and the topology derived from each model.

The Alibaba GPU cluster trace names a node's GPU model and GPU count but
not how the GPUs attach to the host. The simulator needs that layout for
the Nova PCI device pools (``numa_node`` and the ``[pci] device_spec``
tags ``pcie_switch`` and ``nvlink_domain``) and for GPU affinity, so it
derives the layout from the model and the count with the table below.
"""

import dataclasses

NVIDIA_VENDOR_ID = '10de'


@dataclasses.dataclass(frozen=True)
class GpuModel:
    """One GPU model of the trace and how its servers are built."""

    name: str
    #: PCI product id of the GPU; synthetic for undisclosed models.
    product_id: str
    #: Number of GPUs that share one NVLink domain; 0 means no NVLink.
    nvlink_group: int
    description: str


# The PCI product ids of the disclosed models are NVIDIA's. The trace does
# not say whether a V100 node holds SXM2 modules or PCIe cards. Nodes with
# 4 or 8 V100 are taken to be SXM2 servers and nodes with one V100 to hold
# a PCIe card, but one product id per trace model is used, because a
# flavor's gpu_spec names the trace model.
GPU_MODELS = {
    'P100': GpuModel('P100', '15f8', 0, 'Tesla P100 PCIe 16 GB'),
    'T4': GpuModel('T4', '1eb8', 0, 'Tesla T4 PCIe 16 GB'),
    'V100M16': GpuModel(
        'V100M16', '1db1', 4,
        'Tesla V100 16 GB. With 4 or 8 GPUs: SXM2 hybrid cube-mesh, whose '
        'fully connected quads of 4 GPUs are the NVLink domains.'),
    'V100M32': GpuModel(
        'V100M32', '1db5', 4,
        'Tesla V100 32 GB, laid out as V100M16.'),
    'A10': GpuModel('A10', '2236', 0, 'A10 PCIe 24 GB'),
    # NOTE: G1, G2 and G3 are undisclosed in the trace. They are assumed to
    # be 8-GPU servers with an NVSwitch baseboard (one NVLink domain for all
    # GPUs), with synthetic product ids in a range NVIDIA does not use.
    'G1': GpuModel('G1', 'fff1', 8, 'Undisclosed model; NVSwitch assumed.'),
    'G2': GpuModel('G2', 'fff2', 8, 'Undisclosed model; NVSwitch assumed.'),
    'G3': GpuModel('G3', 'fff3', 8, 'Undisclosed model; NVSwitch assumed.'),
}

MODEL_NAMES = tuple(GPU_MODELS)

# PCI addresses of the GPUs in slot order; the same on every host, as on
# servers of one hardware model.
_BUS_NUMBERS = ('1a', '1b', '3d', '3e', '88', '89', 'b1', 'b2')
MAX_GPUS_PER_NODE = 16


@dataclasses.dataclass(frozen=True)
class GpuSlot:
    """Attachment point of one GPU: its topology domains and PCI address."""

    index: int
    address: str
    numa_node: int
    pcie_switch: str
    nvlink_domain: str | None


def pci_address(index):
    """Return the PCI address of the GPU in slot ``index``."""
    if index < len(_BUS_NUMBERS):
        bus = _BUS_NUMBERS[index]
    else:
        bus = '%02x' % (0xc0 + index)
    return '0000:%s:00.0' % bus


def gpu_slots(model_name, gpu_count):
    """Derive the topology of a node's GPUs from its model and count.

    The rules, the same for every model:

    * NUMA: the first half of the GPUs sits on NUMA node 0 and the second
      half on NUMA node 1. A single GPU sits on NUMA node 0.
    * PCIe switch: GPUs are paired in slot order (0-1, 2-3, ...) behind one
      switch per pair. A node with one or two GPUs has one root port per GPU.
    * NVLink: GPUs are grouped in slot order by the model's
      ``nvlink_group``; a node with fewer GPUs than the group size has no
      NVLink, because its GPUs are PCIe cards.

    :raises KeyError: when ``model_name`` is not in :data:`GPU_MODELS`.
    """
    model = GPU_MODELS[model_name]
    half = max(1, (gpu_count + 1) // 2)
    paired = gpu_count >= 4
    has_nvlink = model.nvlink_group and gpu_count >= model.nvlink_group

    slots = []
    for index in range(gpu_count):
        numa_node = index // half if gpu_count > 1 else 0
        switch = index // 2 if paired else index

        nvlink = None
        if has_nvlink:
            nvlink = 'nvl%d' % (index // model.nvlink_group)

        slots.append(GpuSlot(index, pci_address(index), numa_node,
                             'sw%d' % switch, nvlink))
    return slots
