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

"""Options of the [sovereign_ai_ironic] group, read by ironic-python-agent."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    name='sovereign_ai_ironic',
    title='sovereign-ai ironic options')

OPTS = [
    cfg.StrOpt(
        'nvidia_smi_command',
        default='nvidia-smi',
        help='Path or name (searched on PATH) of the nvidia-smi executable '
             'that the GPU steps and sovereign-ai gpu-check run.'),
    cfg.StrOpt(
        'dcgmi_command',
        default='dcgmi',
        help='Path or name (searched on PATH) of the DCGM dcgmi executable '
             'used by the dcgm burn-in backend.'),
    cfg.StrOpt(
        'gpu_burn_command',
        default='gpu_burn',
        help='Path or name (searched on PATH) of the gpu-burn executable '
             'used by the gpu-burn burn-in backend. gpu-burn loads '
             'compare.ptx from its working directory, so the step runs it '
             'in the directory of the executable, after resolving '
             'symbolic links.'),
    cfg.StrOpt(
        'dmesg_command',
        default='dmesg',
        help='Path or name of the dmesg executable that reads the kernel '
             'log for Xid events.'),
    cfg.StrOpt(
        'query_format',
        default='xml',
        choices=[('xml', 'nvidia-smi -q -x, the machine-readable form'),
                 ('text', 'nvidia-smi -q, the human-readable form')],
        help='Output format of the nvidia-smi query that validate_gpus '
             'reads.'),
    cfg.IntOpt(
        'command_timeout',
        default=120,
        min=1,
        help='Seconds to wait for one nvidia-smi or dmesg call before it is '
             'killed and the step fails with a timeout naming the tool.'),
    cfg.StrOpt(
        'log_dir',
        default='/var/log/sovereign-ai-gpu',
        help='Directory where the steps write their JSON report and the '
             'raw tool output. IPA adds it to the ramdisk logs that it '
             'sends to Ironic.'),
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
