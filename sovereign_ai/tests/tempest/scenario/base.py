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

"""Helpers of the GPU scenario tests.

The tests boot servers whose flavors request GPUs through the
``[sovereign_ai] gpu_alias`` PCI alias and read, as admin, the host and
the Placement allocations of the server. With PCI in Placement, Nova
models each GPU as a resource provider named ``<node>_<PCI address>``, so
the allocation names the GPUs that the server holds, and
``[sovereign_ai] gpu_hosts`` gives the domains of each address.

The checks assume that the GPUs of the listed hosts are free when a test
starts, so the classes are serial and every test deletes its servers.
"""

from tempest.api.compute import base
from tempest.common import compute
from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import test_utils

from sovereign_ai.tests.loopback import layout as gpu_layout

CONF = config.CONF

AFFINITY_EXTRA_SPEC = 'sovereign_ai:gpu_affinity'
POLICY_EXTRA_SPEC = 'sovereign_ai:gpu_affinity_policy'


class GpuScenarioTest(base.BaseV2ComputeAdminTest):
    """Base class of the tests that boot GPU servers."""

    # Servers without networks need compute API microversion 2.37.
    min_microversion = '2.37'

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.sovereign_ai.gpu_hosts:
            raise cls.skipException('[sovereign_ai] gpu_hosts is empty.')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.placement_client = cls.os_admin.placement_client
        cls.providers_client = cls.os_admin.resource_providers_client

    @classmethod
    def resource_setup(cls):
        super().resource_setup()
        cls.layouts = gpu_layout.parse_hosts(CONF.sovereign_ai.gpu_hosts)
        products = {layout.product for layout in cls.layouts.values()}
        cls.resource_classes = {
            'CUSTOM_PCI_%s_%s' % (gpu_layout.NVIDIA_VENDOR_ID.upper(),
                                  product.upper())
            for product in products}
        cls.provider_names = {}

    def require_topology_filter(self):
        if not CONF.sovereign_ai_feature_enabled.gpu_topology_filter:
            raise self.skipException(
                '[sovereign_ai_feature_enabled] gpu_topology_filter is off.')

    def create_gpu_flavor(self, count, level=None, policy=None):
        """Create a flavor with ``count`` GPUs and an affinity request."""
        flavor = self.create_flavor(ram=64, vcpus=1, disk=1)
        specs = {'pci_passthrough:alias': '%s:%d' % (
            CONF.sovereign_ai.gpu_alias, count)}
        if level is not None:
            specs[AFFINITY_EXTRA_SPEC] = level
        if policy is not None:
            specs[POLICY_EXTRA_SPEC] = policy
        self.admin_flavors_client.set_flavor_extra_spec(flavor['id'], **specs)
        return flavor

    def boot(self, flavor, wait_until='ACTIVE'):
        """Boot a server without networks; delete it at cleanup."""
        body, _ = compute.create_test_server(
            self.os_primary, flavor=flavor['id'], networks='none',
            wait_until=wait_until)
        self.addCleanup(self.delete, body['id'])
        return body['id']

    def delete(self, server_id):
        """Delete a server and wait until Nova has released it."""
        test_utils.call_and_ignore_notfound_exc(
            self.servers_client.delete_server, server_id)
        waiters.wait_for_server_termination(self.servers_client, server_id)

    def host_of(self, server_id):
        return self.get_host_for_server(server_id)

    def gpu_addresses(self, server_id):
        """Return the host and sorted PCI addresses of a server's GPUs.

        The host is the one named by the GPU resource providers, which
        must all belong to the same compute node.
        """
        allocations = self.placement_client.list_allocations(
            server_id)['allocations']
        hosts = set()
        addresses = []
        for provider_uuid, allocation in allocations.items():
            gpus = sum(amount for rc, amount in
                       allocation['resources'].items()
                       if rc in self.resource_classes)
            if not gpus:
                continue

            # Nova writes the address in the name in upper case.
            name = self._provider_name(provider_uuid)
            node, _, address = name.rpartition('_')
            self.assertEqual(1, gpus,
                             'GPU provider %s holds %d GPUs of server %s, '
                             'expected one.' % (name, gpus, server_id))
            hosts.add(node)
            addresses.append(address.lower())

        self.assertLessEqual(len(hosts), 1,
                             'Server %s has GPUs on several nodes: %s.'
                             % (server_id, sorted(hosts)))
        return (hosts.pop() if hosts else None), sorted(addresses)

    def _provider_name(self, provider_uuid):
        if provider_uuid not in self.provider_names:
            provider = self.providers_client.show_resource_provider(
                provider_uuid)
            self.provider_names[provider_uuid] = provider['name']
        return self.provider_names[provider_uuid]

    def assert_gpus(self, server_id, count, level):
        """Check that the server has ``count`` GPUs in one domain."""
        server_host = self.host_of(server_id)
        node, addresses = self.gpu_addresses(server_id)
        self.assertEqual(count, len(addresses),
                         'Server %s has GPUs %s, expected %d.'
                         % (server_id, addresses, count))
        self.assertEqual(server_host, node,
                         'Server %s runs on %s but its GPUs are on %s.'
                         % (server_id, server_host, node))
        self.assertIn(server_host, self.layouts,
                      'Server %s runs on %s, which is not in '
                      '[sovereign_ai] gpu_hosts.' % (server_id, server_host))

        layout = self.layouts[server_host]
        domains = {layout.domain_of(address, level) for address in addresses}
        self.assertEqual(1, len(domains),
                         'Server %s has GPUs %s on %s in %s domains %s, '
                         'expected one.' % (server_id, addresses, server_host,
                                            level, sorted(map(str, domains))))
        return server_host, addresses

    def fitting_hosts(self, count, level):
        """Return the hosts where an empty domain at ``level`` fits."""
        return sorted(host for host, layout in self.layouts.items()
                      if count <= layout.domain_size(level))

    def assert_no_valid_host(self, flavor):
        server_id = self.boot(flavor, wait_until=None)
        waiters.wait_for_server_status(self.servers_client, server_id,
                                       'ERROR', raise_on_error=False)
        server = self.servers_client.show_server(server_id)['server']
        self.assertIn('No valid host', server.get('fault', {}).get(
            'message', ''), 'Server %s failed for another reason: %s'
            % (server_id, server.get('fault')))
