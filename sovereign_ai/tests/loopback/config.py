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

"""Settings and configuration files of the loopback cloud.

:class:`Settings` gathers everything that the files depend on: the state
directory, the ports, the database and message broker URLs, the emulated
GPU hosts and the sovereign-ai plugins found in the tree. The ``render_*``
functions return the text of one configuration file each.
"""

import collections
import json
import os

from sovereign_ai.tests.loopback import layout as gpu_layout

REGION = 'RegionOne'
SERVICE_PASSWORD = 'loopback-service'
ADMIN_PASSWORD = 'loopback-admin'
RABBIT_VHOST = 'sovereign_ai_loopback'
DB_PREFIX = 'sovereign_ai_loopback_'
DATABASES = ('keystone', 'placement', 'glance', 'nova_api', 'nova_cell0',
             'nova_cell1')

GPU_ALIAS = 'gpu'

# Two hosts with the same GPU model but different topologies, so every
# affinity level has a host that fits and one that does not. gpu-host-1 is
# built like a DGX H100, with NVSwitch joining all 8 GPUs and 2 GPUs per
# PCIe switch. gpu-host-2 is built like a PCIe server, with NVLink bridges
# between pairs of cards and 4 cards per PCIe switch.
DEFAULT_HOSTS = (
    'gpu-host-1:gpus=8,numa=2,switches=4,nvlink=1,bus=0x18,product=2330;'
    'gpu-host-2:gpus=8,numa=2,switches=2,nvlink=4,bus=0x58,product=2330')

_PORT_OFFSETS = {
    'keystone': 0, 'placement': 1, 'glance': 2, 'nova-api': 3,
    'network-standin': 4, 'mariadb': 10, 'rabbitmq': 11,
}

Plugins = collections.namedtuple('Plugins', [
    'gpu_topology_filter', 'gpu_fragmentation_weigher',
    'extra_spec_validation', 'accelerator_usage_notifier'])


class Settings(object):
    """The parameters of one loopback cloud."""

    def __init__(self, state_dir, venv_dir, port_base=18000,
                 hosts_text=DEFAULT_HOSTS, mysql_port=3306,
                 rabbit_port=5672, plugins=None):
        self.state_dir = os.path.abspath(state_dir)
        self.venv_dir = os.path.abspath(venv_dir)
        self.port_base = port_base
        self.hosts_text = hosts_text
        self.hosts = gpu_layout.parse_hosts(hosts_text)
        self.mysql_port = mysql_port
        self.rabbit_port = rabbit_port
        self.plugins = plugins or Plugins(False, False, False, False)

    def port(self, service):
        return self.port_base + _PORT_OFFSETS[service]

    def url(self, service, path=''):
        return 'http://127.0.0.1:%d%s' % (self.port(service), path)

    @property
    def keystone_url(self):
        return self.url('keystone', '/v3')

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def bin(self, name):
        return os.path.join(self.venv_dir, 'bin', name)

    def db_url(self, name):
        return ('mysql+pymysql://root@127.0.0.1:%d/%s%s?charset=utf8'
                % (self.mysql_port, DB_PREFIX, name))

    @property
    def transport_url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/%s' % (
            self.rabbit_port, RABBIT_VHOST)

    def gpu_alias(self):
        products = sorted({lay.product for lay in self.hosts.values()})
        if len(products) != 1:
            raise ValueError(
                'Invalid emulated GPU hosts: products %s differ, but the '
                'loopback cloud defines one PCI alias; use one product.'
                % ', '.join(products))
        return {'name': GPU_ALIAS, 'vendor_id': gpu_layout.NVIDIA_VENDOR_ID,
                'product_id': products[0], 'device_type': 'type-PCI'}


def _ini(sections):
    """Render ``{section: [(key, value), ...]}`` as an INI text.

    A key may repeat within a section, as oslo.config multi-valued options
    require.
    """
    lines = []
    for section, items in sections.items():
        lines.append('[%s]' % section)
        for key, value in items:
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            lines.append('%s = %s' % (key, value))
        lines.append('')
    return '\n'.join(lines)


def _authtoken(settings, username):
    return ([('www_authenticate_uri', settings.keystone_url)]
            + _service_auth(settings, username)
            + [('service_token_roles_required', True)])


def _service_auth(settings, username):
    return [
        ('auth_url', settings.keystone_url),
        ('auth_type', 'password'),
        ('username', username),
        ('password', SERVICE_PASSWORD),
        ('project_name', 'service'),
        ('user_domain_name', 'Default'),
        ('project_domain_name', 'Default'),
        ('region_name', REGION),
    ]


def render_keystone(settings):
    return _ini({
        'DEFAULT': [('debug', False)],
        'database': [('connection', settings.db_url('keystone'))],
        'token': [('provider', 'fernet')],
        'fernet_tokens': [
            ('key_repository', settings.path('keystone', 'fernet-keys'))],
        'credential': [
            ('key_repository', settings.path('keystone', 'credential-keys'))],
        'cache': [('enabled', False)],
    })


def render_placement(settings):
    return _ini({
        'DEFAULT': [('debug', False)],
        'placement_database': [('connection', settings.db_url('placement'))],
        # An 8-GPU request is 8 request groups, one per GPU, so an 8-GPU
        # host alone yields 8! = 40320 candidates. Unlimited, Placement
        # takes minutes to build them; breadth-first keeps every host
        # among the candidates that fit in the limit.
        'placement': [
            ('max_allocation_candidates', 1000),
            ('allocation_candidates_generation_strategy', 'breadth-first'),
        ],
        'api': [('auth_strategy', 'keystone')],
        'keystone_authtoken': _authtoken(settings, 'placement'),
    })


def render_glance(settings):
    return _ini({
        'DEFAULT': [
            ('debug', False),
            ('enabled_backends', 'file:file'),
        ],
        'glance_store': [('default_backend', 'file')],
        'file': [('filesystem_store_datadir', settings.path('glance',
                                                            'images'))],
        'os_glance_staging_store': [
            ('filesystem_store_datadir', settings.path('glance', 'staging'))],
        'os_glance_tasks_store': [
            ('filesystem_store_datadir', settings.path('glance', 'tasks'))],
        'database': [('connection', settings.db_url('glance'))],
        'keystone_authtoken': _authtoken(settings, 'glance'),
        'paste_deploy': [('flavor', 'keystone')],
        'oslo_concurrency': [('lock_path', settings.path('glance', 'lock'))],
    })


def _scheduler_sections(settings):
    filters = ['ComputeFilter', 'ComputeCapabilitiesFilter',
               'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
               'ServerGroupAffinityFilter', 'PciPassthroughFilter']
    available = [('available_filters', 'nova.scheduler.filters.all_filters')]
    if settings.plugins.gpu_topology_filter:
        filters.append('GpuTopologyFilter')
        available.append((
            'available_filters',
            'sovereign_ai.nova.filters.gpu_topology.GpuTopologyFilter'))

    weighers = ['nova.scheduler.weights.all_weighers']
    if settings.plugins.gpu_fragmentation_weigher:
        weighers.append('sovereign_ai.nova.weighers.GpuFragmentationWeigher')

    return available + [
        ('enabled_filters', ','.join(filters)),
        ('weight_classes', ','.join(weighers)),
        ('pci_in_placement', True),
    ]


def render_nova(settings):
    """Return nova.conf, shared by every Nova service of the cloud."""
    return _ini({
        'DEFAULT': [
            ('debug', False),
            ('transport_url', settings.transport_url),
            ('my_ip', '127.0.0.1'),
            ('state_path', settings.path('nova')),
            ('instances_path', settings.path('nova', 'instances')),
            ('allow_resize_to_same_host', True),
        ],
        'api': [('auth_strategy', 'keystone')],
        'api_database': [('connection', settings.db_url('nova_api'))],
        'database': [('connection', settings.db_url('nova_cell1'))],
        'conductor': [('workers', 1)],
        'scheduler': [
            ('workers', 1),
            # The loopback cloud maps new computes with an explicit
            # nova-manage cell_v2 discover_hosts.
            ('discover_hosts_in_cells_interval', -1),
        ],
        'filter_scheduler': _scheduler_sections(settings),
        # Nova's RAM, CPU and disk weighers spread servers, each with
        # up to 1.0 of normalised weight. A multiplier of 10 lets the
        # fragmentation weigher pack GPU servers, as a GPU cloud wants.
        'sovereign_ai_scheduler': [
            ('gpu_fragmentation_weight_multiplier', 10.0)],
        'pci': [('alias', json.dumps(settings.gpu_alias(), sort_keys=True))],
        'notifications': [('notification_format', 'versioned')],
        'oslo_messaging_notifications': [('driver', 'messagingv2')],
        'keystone_authtoken': _authtoken(settings, 'nova'),
        'service_user': [('send_service_user_token', True)]
        + _service_auth(settings, 'nova'),
        'placement': _service_auth(settings, 'placement'),
        'neutron': _service_auth(settings, 'nova') + [
            ('endpoint_override', settings.url('network-standin')),
        ],
        'glance': [('region_name', REGION)],
        'cinder': [('os_region_name', REGION)],
        'vnc': [('enabled', False)],
        'wsgi': [('api_paste_config', settings.path('etc', 'nova',
                                                    'api-paste.ini'))],
        'oslo_concurrency': [('lock_path', settings.path('nova', 'lock'))],
    })


def _usage_notifier(settings, service):
    """Return the sections that enable the accelerator_usage driver.

    oslo.config appends the ``driver`` values of a later file to those of
    nova.conf, so the service sends both the versioned notifications and
    the accelerator usage ones. Each service has a spool of its own.
    """
    if not settings.plugins.accelerator_usage_notifier:
        return {}
    return {
        'oslo_messaging_notifications': [('driver', 'accelerator_usage')],
        'sovereign_ai_notifications': [
            ('spool_path', settings.path(
                'nova', 'accelerator_usage_spool-%s.sqlite' % service))],
    }


def render_conductor(settings):
    """Return the file that nova-conductor reads after nova.conf."""
    sections = {'DEFAULT': []}
    sections.update(_usage_notifier(settings, 'nova-conductor'))
    return _ini(sections)


def render_compute(settings, host):
    """Return the per-host file that nova-compute reads after nova.conf."""
    layout = settings.hosts[host]
    items = [('report_in_placement', True)]
    items += [('device_spec', spec) for spec in layout.device_specs()]
    sections = {
        'DEFAULT': [
            ('host', host),
            ('compute_driver', 'sovereign_ai_loopback.FakeGpuDriver'),
            ('state_path', settings.path('nova', host)),
            ('instances_path', settings.path('nova', host, 'instances')),
        ],
        'pci': items,
        'sovereign_ai_loopback': [('gpu_layout', layout.format())],
    }
    sections.update(_usage_notifier(settings, host))
    return _ini(sections)
