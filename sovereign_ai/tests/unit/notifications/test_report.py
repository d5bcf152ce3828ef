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

"""GPU-hours from recorded usage notifications, and the usage command."""

import contextlib
import io
import json
import os

import ddt
import fixtures

from sovereign_ai.cmd import main
from sovereign_ai.notifications import report
from sovereign_ai.tests import base

WINDOW = (report.parse_time('2026-11-01T00:00:00Z'),
          report.parse_time('2026-11-02T00:00:00Z'))


def usage(event, instance, time, count=4, model='A100-SXM4-40GB',
          project='p1', message_id=None, source=None, **extra):
    payload = {'instance_id': instance, 'project_id': project,
               'source_message_id': source or '%s-%s' % (instance, time),
               'event_time': time, 'count': count, 'model': model,
               'accelerator_kind': 'passthrough_gpu'}
    payload.update(extra)
    return {'message_id': message_id or '%s-%s-%s' % (event, instance, time),
            'event_type': 'accelerator.usage.%s' % event, 'payload': payload}


def hours(records, window=WINDOW):
    lines = [json.dumps(record) for record in records]
    rows = report.gpu_hours(report.read_records(lines, 'usage.jsonl'),
                            *window)
    return {(row['project_id'], row['model']): row['gpu_hours']
            for row in rows}


class TestGpuHours(base.TestCase):

    def test_start_end_pair(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 40.0}, hours([
            usage('start', 'i1', '2026-11-01T02:00:00Z'),
            usage('end', 'i1', '2026-11-01T12:00:00Z')]))

    def test_duplicates_counted_once(self):
        start = usage('start', 'i1', '2026-11-01T02:00:00Z')
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 40.0}, hours([
            start, start,
            usage('end', 'i1', '2026-11-01T12:00:00Z')]))

    def test_running_until_window_end(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 16.0}, hours([
            usage('start', 'i1', '2026-11-01T20:00:00Z')]))

    def test_clipped_to_window_start(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 8.0}, hours([
            usage('start', 'i1', '2026-10-30T00:00:00Z'),
            usage('end', 'i1', '2026-11-01T02:00:00Z')]))

    def test_ended_before_window(self):
        self.assertEqual({}, hours([
            usage('start', 'i1', '2026-10-30T00:00:00Z'),
            usage('end', 'i1', '2026-10-31T00:00:00Z')]))

    def test_resize_restarts(self):
        records = [
            usage('start', 'i1', '2026-11-01T00:00:00Z'),
            usage('start', 'i1', '2026-11-01T02:00:00Z', count=1,
                  model='H100-SXM5-80GB'),
            usage('end', 'i1', '2026-11-01T10:00:00Z', count=1,
                  model='H100-SXM5-80GB')]
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 8.0,
                          ('p1', 'H100-SXM5-80GB'): 8.0}, hours(records))

    def test_resize_to_no_gpu(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 8.0}, hours([
            usage('start', 'i1', '2026-11-01T00:00:00Z'),
            usage('end', 'i1', '2026-11-01T02:00:00Z', count=0,
                  model=None)]))

    def test_exists_opens_interval(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 96.0}, hours([
            usage('exists', 'i1', '2026-11-01T05:00:00Z',
                  audit_period_beginning='2026-10-31T00:00:00Z')]))

    def test_exists_ignored_when_open(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 12.0}, hours([
            usage('start', 'i1', '2026-11-01T00:00:00Z'),
            usage('exists', 'i1', '2026-11-01T01:00:00Z', count=8),
            usage('end', 'i1', '2026-11-01T03:00:00Z')]))

    def test_late_exists_stays_closed(self):
        # Nova's hourly audit reports an instance deleted at 09:30 in the
        # 09:00-10:00 period, and sends that exists at 10:05.
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 38.0}, hours([
            usage('start', 'i1', '2026-11-01T00:00:00Z'),
            usage('end', 'i1', '2026-11-01T09:30:00Z'),
            usage('exists', 'i1', '2026-11-01T10:05:00Z',
                  audit_period_beginning='2026-11-01T09:00:00Z',
                  audit_period_ending='2026-11-01T10:00:00Z')]))

    def test_late_exists_without_start(self):
        # The recording begins after the start: the exists adds its audit
        # period up to the end, and nothing after it.
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 2.0}, hours([
            usage('end', 'i1', '2026-11-01T09:30:00Z'),
            usage('exists', 'i1', '2026-11-01T10:05:00Z',
                  audit_period_beginning='2026-11-01T09:00:00Z',
                  audit_period_ending='2026-11-01T10:00:00Z'),
            usage('exists', 'i1', '2026-11-01T10:06:00Z',
                  audit_period_beginning='2026-11-01T09:00:00Z',
                  audit_period_ending='2026-11-01T10:00:00Z',
                  source='second-audit')]))

    def test_late_exists_after_restart(self):
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 26.0}, hours([
            usage('start', 'i1', '2026-11-01T00:00:00Z'),
            usage('end', 'i1', '2026-11-01T05:00:00Z'),
            usage('start', 'i1', '2026-11-01T14:00:00Z'),
            usage('exists', 'i1', '2026-11-01T15:05:00Z',
                  audit_period_beginning='2026-11-01T14:00:00Z'),
            usage('end', 'i1', '2026-11-01T15:30:00Z'),
            usage('exists', 'i1', '2026-11-01T16:05:00Z',
                  audit_period_beginning='2026-11-01T15:00:00Z')]))

    def test_two_groups_one_event(self):
        records = [
            usage('start', 'i1', '2026-11-01T00:00:00Z', source='s1',
                  message_id='a'),
            usage('start', 'i1', '2026-11-01T00:00:00Z', source='s1',
                  message_id='b', model='VGPU', count=1),
            usage('end', 'i1', '2026-11-01T01:00:00Z', source='s2',
                  message_id='c')]
        self.assertEqual({('p1', 'A100-SXM4-40GB'): 4.0,
                          ('p1', 'VGPU'): 1.0}, hours(records))

    def test_unknown_count_separate(self):
        lines = [json.dumps(usage('start', 'i1', '2026-11-01T00:00:00Z',
                                  count=None))]
        rows = report.gpu_hours(report.read_records(lines, 'f'), *WINDOW)
        self.assertEqual(0.0, rows[0]['gpu_hours'])
        self.assertEqual(24.0, rows[0]['unknown_count_hours'])

    def test_other_events_ignored(self):
        lines = [json.dumps({'event_type': 'instance.create.end'})]
        self.assertEqual([], report.read_records(lines, 'f'))


@ddt.ddt
class TestInvalidRecords(base.TestCase):

    @ddt.data(
        ('not json', 'usage.jsonl:2: invalid JSON'),
        ('[1, 2]', 'usage.jsonl:2: expected a JSON object'),
        ('{"message_id": "m"}', 'usage.jsonl:2: missing field event_type'),
        (json.dumps({'event_type': 'accelerator.usage.end',
                     'message_id': 'm', 'payload': {}}),
         'usage.jsonl:2: missing field payload.instance_id'),
        (json.dumps(usage('end', 'i1', 'noon')),
         "usage.jsonl:2: invalid field payload.event_time: 'noon' (expected "
         "an ISO 8601 time such as 2026-11-01T00:00:00Z)"),
        (json.dumps(usage('end', 'i1', '2026-11-01T00:00:00Z', count=-1)),
         'usage.jsonl:2: invalid field payload.count: -1 (expected a whole '
         'number of 0 or more, or null when unknown)'),
        (json.dumps(usage('end', 'i1', '2026-11-01T00:00:00Z', count='4')),
         "usage.jsonl:2: invalid field payload.count: '4' (expected a whole "
         "number of 0 or more, or null when unknown)"),
        (json.dumps(usage('end', 'i1', '2026-11-01T00:00:00Z', project='')),
         "usage.jsonl:2: invalid field payload.project_id: '' (expected a "
         "non-empty string)"),
        (json.dumps({'event_type': 5}),
         'usage.jsonl:2: invalid field event_type: 5 (expected a non-empty '
         'string)'),
        (json.dumps(usage('exists', 'i1', '2026-11-01T00:00:00Z',
                          audit_period_beginning='daily')),
         "usage.jsonl:2: invalid field payload.audit_period_beginning: "
         "'daily' (expected an ISO 8601 time such as "
         "2026-11-01T00:00:00Z)"),
    )
    @ddt.unpack
    def test_line_named(self, line, message):
        lines = [json.dumps(usage('start', 'i1', '2026-11-01T00:00:00Z')),
                 line]
        error = self.assertRaises(report.InvalidRecord, report.read_records,
                                  lines, 'usage.jsonl')
        self.assertTrue(str(error).startswith(message), str(error))


class TestReportCommand(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tempdir = self.useFixture(fixtures.TempDir()).path

    def _write(self, lines):
        path = os.path.join(self.tempdir, 'usage.jsonl')
        with open(path, 'w') as output:
            output.write('\n'.join(lines) + '\n')
        return path

    def _run(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main.main(['usage'] + list(argv))
        return status, out.getvalue(), err.getvalue()

    def _records(self):
        return self._write([
            json.dumps(usage('start', 'i1', '2026-11-01T00:00:00Z')),
            json.dumps(usage('end', 'i1', '2026-11-01T06:00:00Z')),
            json.dumps(usage('start', 'i2', '2026-11-01T12:00:00Z',
                             project='p2', model='VGPU', count=1))])

    def test_table(self):
        status, out, _err = self._run(
            'report', self._records(), '--from', '2026-11-01T00:00:00Z',
            '--to', '2026-11-02T00:00:00Z')
        self.assertEqual(0, status)
        lines = out.splitlines()
        self.assertEqual(['project_id', 'model', 'kind', 'instances',
                          'gpu_hours', 'unknown_count_hours'],
                         lines[0].split())
        self.assertEqual(['p1', 'A100-SXM4-40GB', 'passthrough_gpu', '1',
                          '24.00', '0.00'], lines[1].split())
        self.assertEqual(['p2', 'VGPU', 'passthrough_gpu', '1', '12.00',
                          '0.00'], lines[2].split())

    def test_csv(self):
        _status, out, _err = self._run(
            'report', self._records(), '--from', '2026-11-01',
            '--to', '2026-11-02', '--format', 'csv')
        self.assertEqual('p1,A100-SXM4-40GB,passthrough_gpu,1,24.0,0.0',
                         out.splitlines()[1])

    def test_json(self):
        _status, out, _err = self._run(
            'report', self._records(), '--from', '2026-11-01',
            '--to', '2026-11-02', '--format', 'json')
        rows = json.loads(out)
        self.assertEqual(12.0, rows[1]['gpu_hours'])

    def test_bad_line_exit_2(self):
        path = self._write(['{"event_type": "accelerator.usage.start"}'])
        status, out, err = self._run('report', path, '--from', '2026-11-01')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertEqual('sovereign-ai: error: %s:1: missing field '
                         'message_id\n' % path, err)

    def test_bad_count_expectation(self):
        path = self._write([json.dumps(
            usage('start', 'i1', '2026-11-01T00:00:00Z', count=-4))])
        status, _out, err = self._run('report', path, '--from', '2026-11-01')
        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: %s:1: invalid field '
                         'payload.count: -4 (expected a whole number of 0 or '
                         'more, or null when unknown)\n' % path, err)

    def test_unknown_event_type_warns(self):
        path = self._write([
            json.dumps({'event_type': 'compute.instance.create.end'}),
            json.dumps(usage('start', 'i1', '2026-11-01T00:00:00Z')),
            json.dumps({'event_type': 'compute.instance.create.end'}),
            json.dumps({'event_type': 'instance.exists'})])
        status, out, err = self._run('report', path, '--from', '2026-11-01',
                                     '--to', '2026-11-02')
        self.assertEqual(0, status)
        self.assertEqual(['p1', 'A100-SXM4-40GB', 'passthrough_gpu', '1',
                          '96.00', '0.00'], out.splitlines()[1].split())
        expected = ('Expected accelerator.usage.end, '
                    'accelerator.usage.exists, '
                    'accelerator.usage.start.')
        self.assertEqual([
            "sovereign-ai: warning: %s:1: skipped 2 record(s) with event_type "
            "'compute.instance.create.end', which is not a usage event. %s"
            % (path, expected),
            "sovereign-ai: warning: %s:4: skipped 1 record(s) with event_type "
            "'instance.exists', which is not a usage event. %s"
            % (path, expected)], err.splitlines())

    def test_empty_input_warns(self):
        path = self._write([])
        status, out, err = self._run('report', path, '--from', '2026-11-01',
                                     '--to', '2026-11-02')
        self.assertEqual(0, status)
        self.assertEqual(1, len(out.splitlines()))
        self.assertEqual('sovereign-ai: warning: no usage records found in '
                         '%s\n' % path, err)

    def test_help_description(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            error = self.assertRaises(SystemExit, main.main,
                                      ['usage', 'report', '--help'])
        self.assertEqual(0, error.code)
        self.assertIn('\nCompute GPU-hours per project and model from '
                      'recorded usage notifications.\n', out.getvalue())

    def test_negative_max_messages(self):
        status, _out, err = self._run(
            'watch', '--max-messages', '-1', '--transport-url', 'rabbit://')
        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: invalid --max-messages -1: '
                         'expected 1 or more, or no --max-messages to run '
                         'until interrupted\n', err)

    def test_missing_file_exit_2(self):
        status, _out, err = self._run(
            'report', os.path.join(self.tempdir, 'absent'),
            '--from', '2026-11-01')
        self.assertEqual(2, status)
        self.assertIn('cannot read', err)

    def test_bad_window_exit_2(self):
        status, _out, err = self._run(
            'report', self._records(), '--from', 'yesterday')
        self.assertEqual(2, status)
        self.assertIn("invalid --from 'yesterday'", err)

    def test_empty_window_exit_2(self):
        status, _out, err = self._run(
            'report', self._records(), '--from', '2026-11-02',
            '--to', '2026-11-01')
        self.assertEqual(2, status)
        self.assertIn('is not after', err)
