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

"""A full, corrupt or locked spool never blocks nor fails the caller."""

import logging
import sqlite3

import fixtures

from sovereign_ai.notifications import driver
from sovereign_ai.tests.functional.notifications import base


class TestSpoolFaults(base.NotifierTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def _driver(self, conf):
        notifier = self.make_notifier(conf)
        return notifier._driver_mgr['accelerator_usage'].obj

    def test_full_spool_drops_and_logs(self):
        proxy = base.TcpProxy(base.rabbit_address())
        proxy.start()
        self.addCleanup(proxy.stop)
        proxy.cut()
        conf = self.make_conf(
            sender_url=base.with_address(base.rabbit_url(), '127.0.0.1',
                                         proxy.port),
            spool_max_records=50)
        usage_driver = self._driver(conf)

        for index in range(20):
            message = base.gpu_message(index, event_type='instance.exists')
            self.assertIsNone(usage_driver.notify({}, message, 'INFO', None))
        for index in range(20, 100):
            message = base.gpu_message(index)
            self.assertIsNone(usage_driver.notify({}, message, 'INFO', None))

        self.assertEqual(50, usage_driver._sender.spool.size())
        self.assertIn('is full (50 of 50 records)', self.log.output)
        self.assertIn('1 records of notification', self.log.output)
        self.assertIn('replaced older instance.exists records',
                      self.log.output)

        collector = self.start_listener()
        proxy.restore()
        # Starts 20-49 filled the spool, starts 50-69 replaced the 20
        # exists records and starts 70-99 were dropped.
        expected = base.instance_ids(70)[20:]
        self.assertTrue(collector.wait_for_instances(expected, timeout=30))
        received = set(collector.instance_ids())
        self.assertEqual(set(expected), received)

    def test_corrupt_spool_moved_aside(self):
        with open(self.spool_path, 'wb') as spool_file:
            spool_file.write(b'this is not an SQLite database' * 100)
        collector = self.start_listener()
        usage_driver = self._driver(self.make_conf())

        usage_driver.notify({}, base.gpu_message(7), 'INFO', None)

        self.assertTrue(collector.wait_for_instances(
            base.instance_ids(8)[7:], timeout=30))
        self.assertIn('cannot be read', self.log.output)
        self.assertIn('%s.corrupt-' % self.spool_path, self.log.output)

    def test_locked_spool_never_blocks(self):
        usage_driver = self._driver(self.make_conf())
        driver.stop_senders()
        blocker = sqlite3.connect(self.spool_path, isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute('BEGIN EXCLUSIVE')

        result = usage_driver.notify({}, base.gpu_message(3), 'INFO', None)

        self.assertIsNone(result)
        self.assertIn('cannot store 1 records of notification',
                      self.log.output)
        self.assertIn('database is locked', self.log.output)
