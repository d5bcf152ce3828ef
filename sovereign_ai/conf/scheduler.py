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
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return OPTS
