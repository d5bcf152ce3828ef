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

"""``sovereign-ai usage watch`` next to another consumer of the topic."""

import datetime
import json
import os
import subprocess
import sys
import time

import kombu

from sovereign_ai.tests.functional.notifications import base


class TestWatch(base.NotifierTestCase):

    def _wait_for_queue(self, name, timeout=30):
        url = base.rabbit_url().replace('rabbit://', 'amqp://', 1)
        deadline = time.monotonic() + timeout
        with kombu.Connection(url, connect_timeout=5) as connection:
            while time.monotonic() < deadline:
                try:
                    connection.channel().queue_declare(queue=name,
                                                       passive=True)
                    return True
                except connection.channel_errors:
                    time.sleep(0.2)
        return False

    def test_watch_and_report(self):
        pool = 'sai-watch-%s' % self.run_id
        collector = self.start_listener()
        watch = subprocess.Popen(
            [sys.executable, '-m', 'sovereign_ai.cmd.main', 'usage', 'watch',
             '--transport-url', base.rabbit_url(), '--topic',
             self.usage_topic, '--exchange', self.exchange, '--pool', pool,
             '--format', 'json', '--max-messages', '2'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(watch.kill)
        self.assertTrue(self._wait_for_queue(pool))

        notifier = self.make_notifier(self.make_conf())
        notifier.info({}, 'instance.create.end',
                      base.gpu_message(1, instance_id='inst-w')['payload'])
        notifier.info({}, 'instance.delete.end',
                      base.gpu_message(2, instance_id='inst-w')['payload'])

        out, err = watch.communicate(timeout=60)
        self.assertEqual(0, watch.returncode, err)
        lines = out.splitlines()
        self.assertEqual(['accelerator.usage.start', 'accelerator.usage.end'],
                         [json.loads(line)['event_type'] for line in lines])
        # The other consumer of the topic still got both.
        self.assertTrue(collector.wait_for_count(2))
        self.assertFalse(self._wait_for_queue(pool, timeout=0.5))

        window_start = datetime.datetime.now(
            datetime.timezone.utc) - datetime.timedelta(1)
        window_end = window_start + datetime.timedelta(2)
        recorded = os.path.join(self.tempdir, 'usage.jsonl')
        with open(recorded, 'w') as output:
            output.write(out)
        report = subprocess.run(
            [sys.executable, '-m', 'sovereign_ai.cmd.main', 'usage',
             'report', recorded, '--from', window_start.isoformat(),
             '--to', window_end.isoformat(), '--format', 'json'],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(0, report.returncode, report.stderr)
        rows = json.loads(report.stdout)
        self.assertEqual(1, len(rows))
        self.assertEqual('A100-SXM4-40GB', rows[0]['model'])
        self.assertEqual(1, rows[0]['instances'])
        # Start and end were sent within seconds of each other.
        self.assertLess(rows[0]['gpu_hours'], 0.1)
