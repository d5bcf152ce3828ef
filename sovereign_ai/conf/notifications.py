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

"""Options of the [sovereign_ai_notifications] group, read by Nova services.

The accelerator usage notification driver also reads Cyborg credentials
from the [sovereign_ai_cyborg] group (keystoneauth1 session, auth and
adapter options) to resolve ``accel:device_profile`` extra specs.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = cfg.OptGroup(
    name='sovereign_ai_notifications',
    title='sovereign-ai notifications options')

CYBORG_GROUP = cfg.OptGroup(
    name='sovereign_ai_cyborg',
    title='sovereign-ai Cyborg client options',
    help='Service credentials and endpoint selection that the accelerator '
         'usage driver uses to read Cyborg device profiles.')

CYBORG_SERVICE_TYPE = 'accelerator'

OPTS = [
    cfg.ListOpt(
        'topics',
        default=['accelerator_usage'],
        help='Topics on which the accelerator_usage driver sends the '
             'accelerator.usage.* notifications. Consumers such as '
             'Ceilometer must listen on these topics.'),
    cfg.StrOpt(
        'exchange',
        help='Exchange that the accelerator.usage.* notifications are sent '
             'to. Unset means the control exchange of the transport '
             '([DEFAULT] control_exchange, "nova" in Nova services).'),
    cfg.StrOpt(
        'transport_url',
        secret=True,
        help='Transport URL of the sender of the accelerator.usage.* '
             'notifications. Unset means the URL of '
             '[oslo_messaging_notifications] transport_url, or of '
             '[DEFAULT] transport_url when that is unset.'),
    cfg.ListOpt(
        'source_topics',
        help='Notifier topics whose notifications the driver reads. Nova '
             'builds one notifier for legacy and one for versioned '
             'notifications, and the driver acts only on the one whose '
             'topics are listed here. Unset means Nova\'s [notifications] '
             'versioned_notifications_topics, or "versioned_notifications" '
             'when Nova\'s options are not registered.'),
    cfg.StrOpt(
        'spool_path',
        default='/var/lib/nova/accelerator_usage_spool.sqlite',
        help='Path of the SQLite file that stores accelerator usage records '
             'until the broker accepts them. The directory must be '
             'writable by the Nova service user.'),
    cfg.IntOpt(
        'spool_max_records',
        default=100000,
        min=1,
        help='Maximum number of usage records the spool stores. When the '
             'spool is full, a new start or end record replaces the oldest '
             'instance.exists record, and a record that finds no '
             'instance.exists record to replace is dropped with an error '
             'log.'),
    cfg.FloatOpt(
        'retry_interval',
        default=1.0,
        min=0.01,
        help='Seconds the sender waits after the first failed send before '
             'it tries again. The wait doubles after each further failure '
             'up to retry_max_interval.'),
    cfg.FloatOpt(
        'retry_max_interval',
        default=60.0,
        min=0.01,
        help='Maximum seconds the sender waits between two send attempts.'),
    cfg.IntOpt(
        'send_batch_size',
        default=100,
        min=1,
        help='Number of spooled records the sender reads per pass.'),
    cfg.ListOpt(
        'gpu_resource_classes',
        default=['VGPU', 'CUSTOM_*GPU*'],
        help='Placement resource classes, as shell-style patterns, whose '
             '"resources:<class>" flavor extra specs count as GPUs. VGPU '
             'and classes whose name contains VGPU count as vGPUs, the '
             'others as passthrough GPUs.'),
    cfg.ListOpt(
        'gpu_vendor_ids',
        default=['10de', '1002'],
        help='PCI vendor ids (hexadecimal, without 0x) of the devices that '
             'count as GPUs when a flavor requests them through '
             'pci_passthrough:alias. The defaults are NVIDIA and AMD. An '
             'alias with another vendor counts only when model_names maps '
             'it.'),
    cfg.DictOpt(
        'model_names',
        default={},
        help='GPU model names that override the built-in table, keyed by '
             '"<vendor_id>:<product_id>" (lower-case hexadecimal), by PCI '
             'alias name, or by resource class. Example: '
             '"10de:2335:H200-SXM-141GB,CUSTOM_VGPU_A16:A16-vGPU".'),
    cfg.IntOpt(
        'cyborg_cache_time',
        default=600,
        min=0,
        help='Seconds a device profile read from Cyborg stays cached.'),
    cfg.IntOpt(
        'cyborg_max_wait',
        default=3600,
        min=0,
        help='Seconds the sender keeps retrying Cyborg for the GPU count of '
             'a device profile before it sends the usage record with '
             'count null and count_known false.'),
]


def _fresh_group(group):
    # ConfigOpts.register_group() makes a shallow copy of the group, which
    # shares the group's option table, so overrides set in one ConfigOpts
    # would show in every other. A new OptGroup per ConfigOpts avoids it.
    return cfg.OptGroup(name=group.name, title=group.title, help=group.help)


def register_opts(conf):
    conf.register_group(_fresh_group(GROUP))
    conf.register_opts(OPTS, group=GROUP.name)
    register_cyborg_opts(conf)


def register_cyborg_opts(conf):
    """Register the keystoneauth1 options of the Cyborg client group."""
    conf.register_group(_fresh_group(CYBORG_GROUP))
    ks_loading.register_session_conf_options(conf, CYBORG_GROUP.name)
    ks_loading.register_auth_conf_options(conf, CYBORG_GROUP.name)
    ks_loading.register_adapter_conf_options(conf, CYBORG_GROUP.name)
    conf.set_default('service_type', CYBORG_SERVICE_TYPE,
                     group=CYBORG_GROUP.name)
    conf.set_default('valid_interfaces', ['internal', 'public'],
                     group=CYBORG_GROUP.name)


def list_opts():
    return OPTS


def list_cyborg_opts():
    """Return the options of the Cyborg client group for the generator."""
    return (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password')
            + ks_loading.get_adapter_conf_options(include_deprecated=False))
