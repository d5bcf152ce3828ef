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

"""Options of the sovereign-ai Tempest plugin."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    name='sovereign_ai',
    title='sovereign-ai GPU cloud under test')

FEATURE_GROUP = cfg.OptGroup(
    name='sovereign_ai_feature_enabled',
    title='sovereign-ai features enabled in the cloud under test')

OPTS = [
    cfg.StrOpt(
        'gpu_alias',
        default='gpu',
        help='Name of the [pci] alias in nova.conf that requests one GPU. '
             'Test flavors request GPUs with pci_passthrough:alias set to '
             '<gpu_alias>:<count>.'),
    cfg.StrOpt(
        'gpu_hosts',
        default='',
        help='GPU layout of each compute host that the scenario tests may '
             'use, as host:layout entries separated by semicolons. A layout '
             'is comma-separated key=value items: gpus (count), numa (NUMA '
             'nodes), switches (PCIe switches), nvlink (NVLink domains), '
             'bus (PCI bus of the first GPU, one bus per GPU in order) and '
             'product (PCI product id). Example: '
             '"gpu-host-1:gpus=8,numa=2,switches=4,nvlink=1,bus=0x18,'
             'product=2330". Empty skips the GPU scenario tests.'),
    cfg.StrOpt(
        'notification_transport_url',
        secret=True,
        help='Transport URL of the broker that carries the accelerator '
             'usage notifications, for example '
             'rabbit://user:password@host:5672/vhost. Unset skips the '
             'notification tests.'),
    cfg.StrOpt(
        'notification_topic',
        default='accelerator_usage',
        help='Topic on which the accelerator_usage driver sends '
             'notifications ([sovereign_ai_notifications] topics in '
             'nova.conf).'),
    cfg.StrOpt(
        'notification_exchange',
        default='nova',
        help='Exchange of the accelerator usage notifications: the control '
             'exchange of the Nova services unless [sovereign_ai_'
             'notifications] exchange sets another one.'),
    cfg.IntOpt(
        'notification_timeout',
        default=60,
        min=1,
        help='Seconds a test waits for an accelerator usage notification.'),
]

FEATURE_OPTS = [
    cfg.BoolOpt(
        'gpu_topology_filter',
        default=False,
        help='Whether nova-scheduler runs GpuTopologyFilter, which honours '
             'the sovereign_ai:gpu_affinity flavor extra spec.'),
    cfg.BoolOpt(
        'gpu_fragmentation_weigher',
        default=False,
        help='Whether nova-scheduler runs GpuFragmentationWeigher with a '
             'multiplier that outweighs the spreading weighers, so GPU '
             'servers pack onto already used hosts.'),
    cfg.BoolOpt(
        'accelerator_usage_notifier',
        default=False,
        help='Whether nova-compute and nova-conductor load the '
             'accelerator_usage notification driver.'),
    cfg.BoolOpt(
        'extra_spec_validation',
        default=False,
        help='Whether nova-api has the sovereign_ai flavor extra spec '
             'validators installed, so invalid values are rejected with '
             'HTTP 400 from compute API microversion 2.86.'),
]

OPT_GROUPS = [(GROUP, OPTS), (FEATURE_GROUP, FEATURE_OPTS)]
