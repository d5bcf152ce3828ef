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

"""``sovereign-ai simulate``: replay a GPU workload under several policies.

See ``doc/source/admin/simulate.rst`` for the protocol and the output.
"""

import logging
import os

from sovereign_ai.cmd import main
from sovereign_ai.gpu import topology
from sovereign_ai.simulate import generator
from sovereign_ai.simulate import output
from sovereign_ai.simulate import runner
from sovereign_ai.simulate import trace

MIN_TUNE = 1.3
MAX_TUNE = 10.0


class SimulateCommand(main.Command):
    """Replay a GPU workload over a fleet and compare placement policies."""

    help = ('Replay a GPU workload over a fleet and print how much GPU '
            'capacity each placement policy leaves unallocated.')

    def add_arguments(self, parser):
        parser.add_argument(
            '--fleet', metavar='FILE',
            help='Node list in the Alibaba GPU trace format (columns sn, '
                 'cpu_milli, memory_mib, gpu, model). Default: the embedded '
                 'fleet of 162 GPU nodes.')
        parser.add_argument(
            '--trace', metavar='FILE',
            help='Task list in the Alibaba GPU trace format (columns name, '
                 'cpu_milli, memory_mib, num_gpu, gpu_milli, optional '
                 'gpu_spec). Default: the embedded workload, generated for '
                 'the fleet.')
        parser.add_argument(
            '--policy', action='append', choices=runner.POLICY_NAMES,
            help='Placement policy to replay; repeat the option for '
                 'several. Default: all of %s.'
                 % ', '.join(runner.POLICY_NAMES))
        parser.add_argument(
            '--seeds', type=int, default=10, metavar='N',
            help='Number of runs per policy, with seeds %d, %d, ... '
                 '(default: 10).' % (runner.FIRST_SEED, runner.FIRST_SEED + 1))
        parser.add_argument(
            '--engine', choices=runner.ENGINE_NAMES, default='fast',
            help='fast: numpy arrays, the same placements as nova in far '
                 'less time (default). nova: Nova\'s own filter and weigher '
                 'handlers over HostState objects; needs Nova and is slow '
                 'on large fleets.')
        parser.add_argument(
            '--tune', type=float, default=MIN_TUNE, metavar='RATIO',
            help='Offered GPU demand at the end of a run, as a multiple of '
                 'the fleet\'s GPU capacity (default: %.1f, at least %.1f).'
                 % (MIN_TUNE, MIN_TUNE))
        parser.add_argument(
            '--affinity', choices=topology.AFFINITY_LEVELS,
            default=topology.AFFINITY_NONE,
            help='GPU affinity that tasks of two or more GPUs require '
                 '(default: none). Placements whose GPUs span several '
                 'domains of that level count as affinity violations.')
        parser.add_argument(
            '--jobs', type=int, default=os.cpu_count() or 1, metavar='N',
            help='Number of processes that run policies and seeds in '
                 'parallel (default: the number of CPUs).')
        parser.add_argument(
            '--format', choices=('table', 'json'), default='table',
            help='Output format (default: table).')
        parser.add_argument(
            '--plot', metavar='FILE.png',
            help='Also draw unallocated GPU capacity against offered '
                 'demand, one line per policy, to this PNG file. Needs '
                 'matplotlib (pip install "sovereign-ai[plot]").')

    def _check_arguments(self, args):
        if args.seeds < 1:
            raise main.CommandError(
                'Invalid --seeds %d: expected 1 or more.' % args.seeds)
        if args.jobs < 1:
            raise main.CommandError(
                'Invalid --jobs %d: expected 1 or more.' % args.jobs)
        if not MIN_TUNE <= args.tune <= MAX_TUNE:
            raise main.CommandError(
                'Invalid --tune %s: expected %.1f to %.1f, because the '
                'results are read at 130%% of capacity.'
                % (args.tune, MIN_TUNE, MAX_TUNE))

        if args.plot:
            folder = os.path.dirname(os.path.abspath(args.plot))
            if not os.path.isdir(folder):
                raise main.CommandError(
                    'Invalid --plot %s: folder %s not found.'
                    % (args.plot, folder))
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise main.CommandError(
                    '--plot needs matplotlib, which is not installed. '
                    'Install it with: pip install "sovereign-ai[plot]".',
                    exit_status=1) from None

        if args.engine == 'nova':
            try:
                runner.engine_class('nova')
            except ImportError as error:
                raise main.CommandError(
                    '--engine nova needs Nova, which cannot be imported: %s. '
                    'Install it with: pip install "sovereign-ai[nova]".'
                    % error, exit_status=1) from None

    @staticmethod
    def _load(args):
        try:
            if args.fleet:
                fleet = trace.read_fleet(args.fleet)
            else:
                fleet = generator.default_fleet()

            if args.trace:
                workload = trace.read_workload(args.trace)
            else:
                workload = generator.default_workload(fleet)
        except trace.TraceError as error:
            raise main.CommandError(str(error)) from None

        if not workload.gpu_demand_milli.sum():
            raise main.CommandError(
                '%s: no task requests a GPU, so there is nothing to '
                'compare.' % (args.trace or workload.name))
        return fleet, workload

    def run(self, args):
        self._check_arguments(args)
        fleet, workload = self._load(args)
        policies = list(dict.fromkeys(args.policy or runner.POLICY_NAMES))
        seeds = [runner.FIRST_SEED + offset for offset in range(args.seeds)]

        specs = [runner.RunSpec(fleet, workload, policy, seed, args.engine,
                                args.tune, args.affinity)
                 for policy in policies for seed in seeds]

        # GpuTopologyFilter and GpuFragmentationWeigher warn about GPUs
        # without an nvlink_domain tag. Simulated PCIe-only GPUs have none
        # by design, so those warnings would only repeat the topology
        # table once per host.
        plugin_logger = logging.getLogger('sovereign_ai.nova')
        plugin_level = plugin_logger.level
        if args.engine == 'nova':
            plugin_logger.setLevel(logging.ERROR)

        progress = output.Progress(len(specs))
        try:
            results = runner.run_all(specs, args.jobs, progress.update)
        finally:
            progress.close()
            plugin_logger.setLevel(plugin_level)

        report = {
            'fleet': fleet.name,
            'fleet_nodes': len(fleet),
            'fleet_gpus': fleet.gpu_capacity_milli // trace.WHOLE_GPU_MILLI,
            'trace': workload.name,
            'trace_tasks': len(workload),
            'engine': args.engine,
            'tune': args.tune,
            'affinity': args.affinity,
            'seed_values': seeds,
            'results': [
                runner.summarise(
                    policy, workload.name,
                    [result for spec, result in zip(specs, results)
                     if spec.policy == policy])
                for policy in policies],
        }

        if args.format == 'json':
            print(output.format_json(report))
        else:
            print(output.format_table(report))

        if args.plot:
            output.write_plot(report, args.plot)
        return 0
