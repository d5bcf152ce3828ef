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

"""Nova's in-process functional harness with fake GPU hosts.

The tests run the real nova-api, conductor, scheduler and libvirt compute
services of the installed Nova, with a real Placement service, an
in-memory database and Nova's fake libvirt. Only the hardware is fake: the
libvirt fixture reports NVIDIA H100 PCI devices spread over NUMA nodes, and
the [pci] device_spec tags them with their PCIe switch and NVLink domain.
"""

import collections
import os
import sys
import warnings

import fixtures
from nova import context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import test_pci_sriov_servers
from oslo_config import cfg
from oslo_serialization import jsonutils
from sqlalchemy import exc as sqla_exc

VENDOR_ID = '10de'
VENDOR_NAME = 'NVIDIA Corporation'
PRODUCT_ID = '2330'
PRODUCT_NAME = 'GH100 [H100 SXM5 80GB]'
ALIAS = 'h100'
RESOURCE_CLASS = 'CUSTOM_PCI_%s_%s' % (VENDOR_ID.upper(), PRODUCT_ID)

Gpu = collections.namedtuple(
    'Gpu', ['address', 'numa_node', 'pcie_switch', 'nvlink_domain'])

# An HGX H100 board: eight GPUs behind four PCIe switches on two NUMA nodes,
# all connected by one NVSwitch fabric. The fake libvirt device generator
# puts every device in PCI domain 0000.
HGX_GPUS = (
    Gpu('0000:18:00.0', 0, 'hgx-sw0', 'hgx-nvs0'),
    Gpu('0000:2a:00.0', 0, 'hgx-sw0', 'hgx-nvs0'),
    Gpu('0000:3a:00.0', 0, 'hgx-sw1', 'hgx-nvs0'),
    Gpu('0000:5d:00.0', 0, 'hgx-sw1', 'hgx-nvs0'),
    Gpu('0000:9a:00.0', 1, 'hgx-sw2', 'hgx-nvs0'),
    Gpu('0000:ab:00.0', 1, 'hgx-sw2', 'hgx-nvs0'),
    Gpu('0000:ba:00.0', 1, 'hgx-sw3', 'hgx-nvs0'),
    Gpu('0000:db:00.0', 1, 'hgx-sw3', 'hgx-nvs0'),
)

# A PCIe server: eight GPUs on two PCIe switches, one per NUMA node, joined
# in pairs by NVLink bridges. Its buses differ from the HGX board's, so one
# [pci] device_spec serves both kinds of host in one test.
PCIE_GPUS = (
    Gpu('0000:17:00.0', 0, 'pcie-sw0', 'pcie-pair0'),
    Gpu('0000:31:00.0', 0, 'pcie-sw0', 'pcie-pair0'),
    Gpu('0000:4b:00.0', 0, 'pcie-sw0', 'pcie-pair1'),
    Gpu('0000:65:00.0', 0, 'pcie-sw0', 'pcie-pair1'),
    Gpu('0000:98:00.0', 1, 'pcie-sw1', 'pcie-pair2'),
    Gpu('0000:b1:00.0', 1, 'pcie-sw1', 'pcie-pair2'),
    Gpu('0000:ca:00.0', 1, 'pcie-sw1', 'pcie-pair3'),
    Gpu('0000:e3:00.0', 1, 'pcie-sw1', 'pcie-pair3'),
)

# A board whose PCI addresses alternate between the two NUMA nodes, so that
# the first four free GPUs in address order span both nodes.
INTERLEAVED_GPUS = (
    Gpu('0000:1b:00.0', 0, 'int-sw0', 'int-nvs0'),
    Gpu('0000:43:00.0', 1, 'int-sw1', 'int-nvs0'),
    Gpu('0000:52:00.0', 0, 'int-sw0', 'int-nvs0'),
    Gpu('0000:61:00.0', 1, 'int-sw1', 'int-nvs0'),
    Gpu('0000:9d:00.0', 0, 'int-sw2', 'int-nvs0'),
    Gpu('0000:c3:00.0', 1, 'int-sw3', 'int-nvs0'),
    Gpu('0000:d1:00.0', 0, 'int-sw2', 'int-nvs0'),
    Gpu('0000:df:00.0', 1, 'int-sw3', 'int-nvs0'),
)

GPU_BY_ADDRESS = {
    gpu.address: gpu for gpu in HGX_GPUS + PCIE_GPUS + INTERLEAVED_GPUS}

# [placement] max_allocation_candidates of the Placement service.
MAX_CANDIDATES = 1000


def device_spec(gpus):
    """Return one [pci] device_spec entry per GPU, tagged with its domains."""
    return [
        jsonutils.dumps({
            'vendor_id': VENDOR_ID,
            'product_id': PRODUCT_ID,
            'address': gpu.address,
            'pcie_switch': gpu.pcie_switch,
            'nvlink_domain': gpu.nvlink_domain,
        })
        for gpu in gpus
    ]


class GpuPCIDevicesInfo(fakelibvirt.HostPCIDevicesInfo):
    """Fake libvirt PCI devices for a list of GPUs.

    Nova's generator spreads devices over NUMA nodes round-robin and reports
    Intel NICs. This one places each GPU at its own address and NUMA node,
    with NVIDIA's vendor and product ids.
    """

    def __init__(self, gpus):
        super().__init__(num_pci=0, num_pfs=0, num_vfs=0)
        for index, gpu in enumerate(gpus):
            _domain, bus, slot_function = gpu.address.split(':')
            slot, function = slot_function.split('.')
            self.add_device(
                dev_type='PCI', bus=int(bus, 16), slot=int(slot, 16),
                function=int(function), iommu_group=40 + index,
                numa_node=gpu.numa_node, vend_id=VENDOR_ID,
                vend_name=VENDOR_NAME, prod_id=PRODUCT_ID,
                prod_name=PRODUCT_NAME, driver_name='vfio-pci')


def api_paste_config():
    """Return the path of Nova's api-paste.ini in this environment.

    pip installs it under ``<sys.prefix>/etc/nova``, while the installed
    Nova test fixtures look for it under ``site-packages/etc/nova``.
    """
    return os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


class GpuServersTestBase(test_pci_sriov_servers._PCIServersTestBase):
    """Nova's PCI server tests base with GPU hosts and our filter enabled.

    PCI devices are tracked in Placement (``[pci] report_in_placement`` and
    ``[filter_scheduler] pci_in_placement``), unless a subclass sets
    ``PCI_IN_PLACEMENT = False``.
    """

    ADDITIONAL_FILTERS = [
        'NUMATopologyFilter', 'PciPassthroughFilter', 'GpuTopologyFilter']
    PCI_DEVICE_SPEC = device_spec(HGX_GPUS + PCIE_GPUS + INTERLEAVED_GPUS)
    PCI_ALIAS = [jsonutils.dumps({
        'vendor_id': VENDOR_ID,
        'product_id': PRODUCT_ID,
        'device_type': 'type-PCI',
        'name': ALIAS,
    })]
    PCI_IN_PLACEMENT = True
    # Extra spec validation needs compute API microversion 2.86 or later.
    microversion = 'latest'

    def setUp(self):
        paste_config = api_paste_config()
        if not os.path.exists(paste_config):
            self.fail(
                'Nova api-paste.ini not found at %s. Install nova with pip '
                'into this environment (sys.prefix %s) so that its data '
                'files are present.' % (paste_config, sys.prefix))
        self.flags(api_paste_config=paste_config, group='wsgi')

        self.flags(
            available_filters=[
                'nova.scheduler.filters.all_filters',
                'sovereign_ai.nova.filters.all_filters',
            ],
            group='filter_scheduler')
        self.flags(pci_in_placement=self.PCI_IN_PLACEMENT,
                   group='filter_scheduler')
        self.flags(report_in_placement=self.PCI_IN_PLACEMENT, group='pci')

        # Nova reads /sys to tell SR-IOV PFs from other devices when it
        # parses [pci] device_spec, in every service. This machine's /sys
        # has none of the fake devices, and none of them is a PF.
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.is_physical_function', return_value=False))
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.get_function_by_ifname',
            return_value=(None, False)))

        super().setUp()

        # Nova's test fixture turns SQLAlchemy deprecation warnings raised
        # in nova modules into errors. SQLAlchemy 2.1 deprecates noload(),
        # which Nova 34 calls when it records a boot that found no host, so
        # every NoValidHost would become an API error 500. The fixture
        # restores the warning filters after the test.
        warnings.filterwarnings(
            'ignore', message=r'The noload\(\) option is deprecated',
            category=sqla_exc.SADeprecationWarning)

        # The same Placement tuning as Nova's own PCI in Placement tests:
        # without it, eight single-device request groups on a host with
        # eight devices make Placement build 8**8 combinations.
        try:
            self.placement_fixture.conf_fixture.config(
                group='workarounds', optimize_for_wide_provider_trees=True)
        except cfg.NoSuchOptError:
            pass
        self.placement_fixture.conf_fixture.config(
            group='placement',
            allocation_candidates_generation_strategy='breadth-first')
        # Placement returns every order of the same devices as a distinct
        # candidate (8! = 40320 for eight GPUs of eight), and these share one
        # hash, so collecting them without a limit takes quadratic time. The
        # operator guide recommends the same limit.
        self.placement_fixture.conf_fixture.config(
            group='placement', max_allocation_candidates=MAX_CANDIDATES)

        self.ctxt = context.get_admin_context()

    def start_gpu_compute(self, hostname, gpus):
        """Start a compute with two NUMA nodes and the given GPUs."""
        host_info = fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2)
        return self.start_compute(
            hostname=hostname, host_info=host_info,
            pci_info=GpuPCIDevicesInfo(gpus))

    def create_gpu_flavor(self, count, affinity=None, policy=None,
                          name=None):
        """Create a flavor with ``count`` GPUs and the affinity extra specs."""
        extra_specs = {'pci_passthrough:alias': '%s:%d' % (ALIAS, count)}
        if affinity is not None:
            extra_specs['sovereign_ai:gpu_affinity'] = affinity
        if policy is not None:
            extra_specs['sovereign_ai:gpu_affinity_policy'] = policy
        return self._create_flavor(
            name=name or 'gpu%d-%s-%s' % (count, affinity, policy),
            vcpu=1, memory_mb=512, disk=1, ephemeral=0,
            extra_spec=extra_specs)

    def boot(self, flavor_id, expected_state='ACTIVE'):
        return self._create_server(
            flavor_id=flavor_id, networks='none',
            expected_state=expected_state)

    def claimed_gpus(self, server):
        """Return the GPUs that the compute claimed for a server."""
        devices = objects.PciDeviceList.get_by_instance_uuid(
            self.ctxt, server['id'])
        return sorted((GPU_BY_ADDRESS[device.address] for device in devices),
                      key=lambda gpu: gpu.address)

    def allocated_gpus(self, server):
        """Return the GPUs that Placement allocated to a server."""
        hostname = server['OS-EXT-SRV-ATTR:host']
        prefix = '%s_' % hostname
        gpus = []
        allocations = self._get_allocations_by_server_uuid(server['id'])
        for rp_uuid, allocation in allocations.items():
            if RESOURCE_CLASS not in allocation['resources']:
                continue
            name = self._get_resource_provider_by_uuid(rp_uuid)['name']
            self.assertTrue(name.startswith(prefix), name)
            # Nova names a device provider <host>_<PCI address in upper case>.
            gpus.append(GPU_BY_ADDRESS[name[len(prefix):].lower()])
        return sorted(gpus, key=lambda gpu: gpu.address)

    def assert_gpus_share(self, server, attribute, count):
        """Assert that the server has ``count`` GPUs in one domain.

        The compute's claim and the Placement allocation must name the same
        devices, and those devices must share ``attribute``.
        """
        claimed = self.claimed_gpus(server)
        self.assertEqual(count, len(claimed), claimed)
        if self.PCI_IN_PLACEMENT:
            self.assertEqual(claimed, self.allocated_gpus(server))
        return self.assert_one_domain(claimed, attribute)

    def assert_one_domain(self, gpus, attribute):
        """Assert that the GPUs share ``attribute`` and return its value."""
        domains = {getattr(gpu, attribute) for gpu in gpus}
        self.assertEqual(1, len(domains), gpus)
        return domains.pop()
