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

"""Print the results as a table or JSON, draw the chart, show progress."""

import json
import sys
import time

from sovereign_ai.simulate import protocol


def _count(number, noun):
    return '%d %s%s' % (number, noun, '' if number == 1 else 's')


def _pair(value):
    return '%6.2f ± %.2f' % (value['mean'], value['sd'])


def format_table(report):
    """Return the results of ``report`` as a readable text table."""
    lines = [
        'Fleet:    %s (%d GPU nodes, %d GPUs)' % (
            report['fleet'], report['fleet_nodes'], report['fleet_gpus']),
        'Workload: %s (%d tasks), offered GPU demand tuned to %d%% of '
        'capacity' % (report['trace'], report['trace_tasks'],
                      round(report['tune'] * 100)),
        'Runs:     %s (%s), engine %s' % (
            _count(len(report['seed_values']), 'seed'),
            ', '.join(str(seed) for seed in report['seed_values']),
            report['engine']),
        '',
        'Unallocated GPU capacity (%) when the offered GPU demand reaches '
        '100% and 130% of capacity,',
        'mean ± sd over seeds; failed tasks and affinity violations are '
        'means per run.',
        '',
    ]

    header = ('policy', 'at 100%', 'at 130%', 'failed tasks',
              'affinity violations')
    rows = [header]
    for item in report['results']:
        rows.append((item['policy'],
                     _pair(item['unallocated_gpu_pct_at_100']),
                     _pair(item['unallocated_gpu_pct_at_130']),
                     '%.1f' % item['tasks_failed']['mean'],
                     '%.1f' % item['affinity_violations']['mean']))

    widths = [max(len(row[column]) for row in rows)
              for column in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width)
                  for cell, width in zip(row[1:], widths[1:])]
        lines.append('  '.join(cells).rstrip())
    return '\n'.join(lines)


def format_json(report):
    """Return ``report`` as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False)


def write_plot(report, path):
    """Draw unallocated GPU % against offered demand, one line per policy.

    :raises ImportError: when matplotlib is not installed.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    demand = list(protocol.DEMAND_POINTS)
    for item in report['results']:
        axes.plot(demand, item['unallocated_gpu_pct_by_demand'],
                  label=item['policy'])

    axes.set_xlabel('Offered GPU demand (% of capacity)')
    axes.set_ylabel('Unallocated GPU capacity (%)')
    axes.set_title('%s on %s, %d seeds' % (
        report['trace'], report['fleet'], len(report['seed_values'])))
    axes.set_xlim(0, demand[-1])
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


class Progress:
    """A progress line on stderr for runs that take a while.

    It shows from the start on a terminal, and otherwise only once the run
    has lasted ``delay`` seconds, then at most every ``interval`` seconds
    and without carriage returns, so that logs stay readable.
    """

    def __init__(self, total, stream=None, delay=3.0, interval=10.0):
        self.total = total
        self.stream = stream or sys.stderr
        self.delay = delay
        self.interval = interval
        self.started = time.monotonic()
        self.last_shown = None
        self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.printed = False

    def update(self, done):
        now = time.monotonic()
        elapsed = now - self.started
        if not self.tty:
            if elapsed < self.delay:
                return
            if (self.last_shown is not None
                    and now - self.last_shown < self.interval
                    and done < self.total):
                return

        self.last_shown = now
        width = 30
        filled = int(width * done / self.total) if self.total else width
        line = 'simulate: [%s%s] %d/%d runs, %.0f s' % (
            '#' * filled, '.' * (width - filled), done, self.total, elapsed)
        if self.tty:
            self.stream.write('\r' + line)
        else:
            self.stream.write(line + '\n')
        self.stream.flush()
        self.printed = True

    def close(self):
        if self.printed and self.tty:
            self.stream.write('\n')
            self.stream.flush()
