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

"""A fake Nova compute driver that reports NVIDIA GPUs.

Nova's ``FakeDriverWithPciResources`` reports the same six NICs on every
host, with the vendor id ``fake-vendor_id``: that value does not fit the
4-character ``vendor_id`` column of Nova's database and no ``[pci] alias``
can match it. This driver reports instead the GPUs of the layout in
``[sovereign_ai_loopback] gpu_layout`` (see
:mod:`sovereign_ai.tests.loopback.layout`), as ``type-PCI`` devices with
vendor ``10de``, so ``[pci] device_spec`` tags, aliases by vendor and
product, and PCI in Placement work as with real GPUs.

Enable it in the nova.conf of a nova-compute service::

    [DEFAULT]
    compute_driver = sovereign_ai.tests.loopback.fake_gpu_driver.FakeGpuDriver

    [sovereign_ai_loopback]
    gpu_layout = gpus=8,numa=2,switches=4,nvlink=1,bus=0x18

Nothing runs: servers exist only in this process's memory, as with every
Nova fake driver.
"""

import uuid

from nova import conf as nova_conf
from nova.virt import fake
import nova.virt.node
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils

from sovereign_ai.tests.loopback import layout as gpu_layout

LOG = logging.getLogger(__name__)

CONF = nova_conf.CONF

GROUP = cfg.OptGroup(
    name='sovereign_ai_loopback',
    title='Emulated GPU host of the loopback cloud')

OPTS = [
    cfg.StrOpt(
        'gpu_layout',
        default='gpus=8,numa=2,switches=4,nvlink=1,bus=0x18,product=2330',
        help='GPU layout that the fake driver reports, as comma-separated '
             'key=value items: gpus (count), numa (NUMA nodes), switches '
             '(PCIe switches), nvlink (NVLink domains), bus (first PCI bus '
             'number, one bus per GPU) and product (PCI product id, '
             '4 hex digits).'),
]

CONF.register_group(GROUP)
CONF.register_opts(OPTS, group=GROUP)

# Node UUIDs derive from the node name in this namespace, so a restarted
# compute service finds its compute node record again.
_NODE_NAMESPACE = uuid.UUID('7b0c3a52-6f55-4b4e-9d43-3f0f2bb1c0de')


def node_uuid(nodename):
    """Return the stable compute node UUID of ``nodename``."""
    return str(uuid.uuid5(_NODE_NAMESPACE, nodename))


class FakeGpuDriver(fake.FakeDriverWithPciResources):
    """Fake driver whose host has the GPUs of a configured layout."""

    # Roughly a DGX H100 host, so flavors of real GPU servers fit.
    vcpus = 224
    memory_mb = 2 * 1024 * 1024
    local_gb = 30000

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self.layout = gpu_layout.parse(
            CONF.sovereign_ai_loopback.gpu_layout)

    def init_host(self, host):
        super().init_host(host)

        # nova-compute refuses to restart without a node identity file in
        # [DEFAULT] state_path, which Nova's fake drivers never write.
        if nova.virt.node.read_local_node_uuid() is None:
            nova.virt.node.write_local_node_uuid(node_uuid(host))

        LOG.info('Emulated GPU host %s: %s', host, self.layout.format())

    def get_available_resource(self, nodename):
        host_status = super().get_available_resource(nodename)
        if not host_status:
            return host_status

        host_status['uuid'] = node_uuid(nodename)
        host_status['pci_passthrough_devices'] = jsonutils.dumps(
            self.layout.pci_passthrough_devices())
        return host_status

    def get_nodenames_by_uuid(self, refresh=False):
        return {node_uuid(name): name for name in self.get_available_nodes()}
