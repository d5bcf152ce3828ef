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

"""A sending process killed with SIGKILL loses no spooled usage record."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from testtools import content

from sovereign_ai.tests.functional.notifications import base

NOTIFICATIONS = 2000


class TestKill(base.NotifierTestCase):

    def _child(self, config, progress, first, count):
        return subprocess.Popen(
            [sys.executable, '-m',
             'sovereign_ai.tests.functional.notifications.notifier_child',
             '--config-file', config, '--first', str(first),
             '--count', str(count), '--progress', progress,
             '--versioned-topic', self.versioned_topic, '--pause', '0.001'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @staticmethod
    def _returned(progress):
        with open(progress) as lines:
            return [line.strip() for line in lines if line.endswith('\n')]

    def _wait_progress(self, child, progress, count):
        while len(self._returned(progress)) < count:
            if child.poll() is not None:
                self.fail('the notifier process exited early: %s'
                          % child.stderr.read())
            time.sleep(0.02)

    def _spooled(self):
        with sqlite3.connect(self.spool_path) as connection:
            return connection.execute(
                'SELECT count(*) FROM records').fetchone()[0]

    def test_sigkill_loses_nothing(self):
        # The broker link is cut while the child sends, so the spool contains
        # unsent records when the child is killed.
        proxy = base.TcpProxy(base.rabbit_address())
        proxy.start()
        self.addCleanup(proxy.stop)
        collector = self.start_listener()
        config = self.write_child_config(base.with_address(
            base.rabbit_url(), '127.0.0.1', proxy.port))
        progress = os.path.join(self.tempdir, 'progress')
        open(progress, 'w').close()

        child = self._child(config, progress, 0, NOTIFICATIONS)
        self.addCleanup(child.kill)
        self._wait_progress(child, progress, NOTIFICATIONS // 4)
        proxy.cut()
        self._wait_progress(child, progress, NOTIFICATIONS // 2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        returned = [int(index) for index in self._returned(progress)]
        spooled = self._spooled()
        proxy.restore()

        restarted = self._child(config, progress, NOTIFICATIONS, 0)
        self.addCleanup(restarted.kill)
        _out, errors = restarted.communicate(timeout=60)
        self.assertEqual(0, restarted.returncode, errors)

        expected = [base.instance_ids(NOTIFICATIONS)[i] for i in returned]
        collector.wait_for_instances(expected, timeout=30)
        counts = base.delivery_counts(collector, expected)
        self.addDetail('counts', content.text_content(
            'notify returned=%(sent)d received=%(received)d '
            'duplicates=%(duplicates)d missing=%(missing)d' % counts
            + ' spooled at kill=%d' % spooled))
        self.assertLess(len(returned), NOTIFICATIONS)
        self.assertGreater(spooled, 0)
        self.assertEqual(0, counts['missing'])
