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

"""Options of the [sovereign_ai_scheduler] group, read by nova-scheduler."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    name='sovereign_ai_scheduler',
    title='sovereign-ai scheduler options')

OPTS = [
    cfg.IntOpt(
        'topology_warning_interval',
        default=300,
        min=0,
        help='Minimum time, in seconds, between two warnings that '
             'GpuTopologyFilter logs for the same host and the same '
             'problem: a GPU whose device spec tag is missing or malformed, '
             'or a flavor with an invalid sovereign_ai extra spec. Repeats '
             'inside the interval are counted, and the next warning states '
             'the count. 0 logs every occurrence.'),
    cfg.FloatOpt(
        'gpu_fragmentation_weight_multiplier',
        default=1.0,
        help='Multiplier of GpuFragmentationWeigher, a unitless factor '
             'applied to its normalised weight (0 to 1). A positive value '
             'prefers the hosts where the request increases GPU '
             'fragmentation least; a negative value prefers the opposite. '
             'Host aggregate metadata with the key '
             'gpu_fragmentation_weight_multiplier overrides it for the '
             'hosts of that aggregate; when a host is in several such '
             'aggregates, the smallest value applies.'),
    cfg.StrOpt(
        'gpu_request_mix',
        default='',
        help='Starting estimate of the typical GPU requests, as comma-'
             'separated GPUS[@AFFINITY]:WEIGHT entries, for example '
             '1:0.5,2:0.2,4@numa:0.2,8@nvlink:0.1. GPUS is the number of '
             'GPUs a request takes, AFFINITY one of none, numa, pcie_switch '
             'or nvlink (default none), and WEIGHT a relative popularity. '
             'GpuFragmentationWeigher learns the mix from the requests it '
             'weighs, and this estimate fades with '
             'gpu_request_mix_half_life. Empty starts from the learned mix '
             'alone. An invalid value is logged as an error and ignored.'),
    cfg.FloatOpt(
        'gpu_request_mix_half_life',
        default=1000.0,
        min=1.0,
        help='Number of GPU requests after which a request counts half as '
             'much in the request mix that GpuFragmentationWeigher learns. '
             'Smaller values follow changes in the workload faster; larger '
             'values give a steadier mix.'),
    cfg.IntOpt(
        'gpu_fragmentation_warning_interval',
        default=300,
        min=0,
        help='Minimum time, in seconds, between two warnings that '
             'GpuFragmentationWeigher logs for the same host and the same '
             'problem, such as a malformed device spec tag or a host '
             'without PCI device pools. Repeats inside the interval are '
             'counted, and the next warning states the count. 0 logs every '
             'occurrence.'),
]


def register_opts(conf):
    # ConfigOpts.register_group() keeps a shallow copy of the group that
    # shares its option table, so a group object registered in two
    # ConfigOpts would share their overrides. Register a new one each time.
    conf.register_group(
        cfg.OptGroup(name=GROUP.name, title=GROUP.title, help=GROUP.help))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return OPTS
