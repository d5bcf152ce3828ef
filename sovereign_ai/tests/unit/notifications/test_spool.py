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

"""The SQLite spool of usage notifications."""

import logging
import os
import sqlite3

import fixtures

from sovereign_ai.notifications import events
from sovereign_ai.notifications import spool
from sovereign_ai.tests import base


def record(instance_id, event_type=events.START):
    return {'message_id': 'm-%s-%s' % (instance_id, event_type),
            'event_type': event_type,
            'payload': {'instance_id': instance_id}}


class TestSpool(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'sub', 'spool.sqlite')
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def _spool(self, max_records=100):
        usage_spool = spool.Spool(self.path, max_records)
        self.addCleanup(usage_spool.close)
        return usage_spool

    def test_fifo_order(self):
        usage_spool = self._spool()
        usage_spool.append([record('a'), record('b')])
        usage_spool.append([record('c')])

        head = usage_spool.head(10)

        self.assertEqual(['a', 'b', 'c'], [r.instance_id for r in head])
        self.assertEqual(record('b'), head[1].message)
        self.assertEqual(3, usage_spool.size())

    def test_wal_mode(self):
        self._spool().append([record('a')])
        with sqlite3.connect(self.path) as connection:
            mode = connection.execute('PRAGMA journal_mode').fetchone()[0]
        self.assertEqual('wal', mode)

    def test_delete_sent(self):
        usage_spool = self._spool()
        usage_spool.append([record('a'), record('b')])
        first = usage_spool.head(1)[0]

        usage_spool.delete([first.id])

        self.assertEqual(['b'], [r.instance_id for r in usage_spool.head(5)])
        self.assertEqual(1, usage_spool.size())

    def test_survives_reopen(self):
        usage_spool = self._spool()
        usage_spool.append([record('a')])
        usage_spool.close()

        reopened = self._spool()

        self.assertEqual(['a'], [r.instance_id for r in reopened.head(5)])

    def test_full_replaces_exists(self):
        usage_spool = self._spool(max_records=2)
        usage_spool.append([record('a', events.EXISTS),
                            record('b', events.EXISTS)])

        result = usage_spool.append([record('c'), record('d', events.EXISTS)])

        self.assertEqual(1, result.stored)
        self.assertEqual(1, result.replaced)
        self.assertEqual(1, result.dropped)
        self.assertEqual(['b', 'c'],
                         [r.instance_id for r in usage_spool.head(5)])

    def test_full_drops_new(self):
        usage_spool = self._spool(max_records=1)
        usage_spool.append([record('a')])

        result = usage_spool.append([record('b', events.END)])

        self.assertEqual(0, result.stored)
        self.assertEqual(1, result.dropped)
        self.assertEqual(['a'], [r.instance_id for r in usage_spool.head(5)])

    def test_corrupt_file_moved(self):
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, 'wb') as spool_file:
            spool_file.write(b'garbage' * 1000)

        usage_spool = self._spool()
        usage_spool.append([record('a')])

        self.assertTrue(usage_spool.durable)
        self.assertEqual(1, usage_spool.size())
        moved = [name for name in os.listdir(os.path.dirname(self.path))
                 if '.corrupt-' in name]
        self.assertEqual(1, len(moved))
        self.assertIn('cannot be read', self.log.output)

    def test_unwritable_path_in_memory(self):
        blocker = os.path.join(os.path.dirname(os.path.dirname(self.path)),
                               'file')
        open(blocker, 'w').close()
        usage_spool = spool.Spool(os.path.join(blocker, 'spool.sqlite'), 10)

        usage_spool.append([record('a')])

        self.assertFalse(usage_spool.durable)
        self.assertEqual(1, usage_spool.size())
        self.assertIn('kept in memory only', self.log.output)
