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

"""Durable local spool of usage notifications, in SQLite.

The spool uses write-ahead logging with ``synchronous=NORMAL``: a record
whose append returned survives the crash or ``kill -9`` of the process,
but the last transactions can be lost when the whole machine loses power.
Several processes may share one spool file; SQLite serializes their
writes.
"""

import os
import sqlite3
import threading
import time
import weakref

from oslo_log import log as logging
from oslo_serialization import jsonutils

from sovereign_ai.notifications import events

LOG = logging.getLogger(__name__)

# Milliseconds a write waits for a lock that another process holds. The
# wait blocks the calling thread, and under eventlet the whole service,
# so it is kept short. A write that times out is reported as failed.
BUSY_TIMEOUT_MS = 200

_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS records ('
    ' id INTEGER PRIMARY KEY AUTOINCREMENT,'
    ' instance_id TEXT NOT NULL,'
    ' event_type TEXT NOT NULL,'
    ' created_at REAL NOT NULL,'
    ' body TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS records_event_type'
    ' ON records (event_type, id)',
    'CREATE TABLE IF NOT EXISTS counters ('
    ' name TEXT PRIMARY KEY, value INTEGER NOT NULL)',
    "INSERT OR IGNORE INTO counters VALUES ('records', 0)",
)


# Spools of this process, reset in a forked child (see _reset_in_child).
_SPOOLS = weakref.WeakSet()

# Connections inherited from the parent. A child must not use or close
# them, so they are kept here until it exits.
_INHERITED = []


def _reset_in_child():
    # A lock that another thread held at fork time stays locked forever in
    # the child, and an SQLite connection must not cross a fork.
    for spool in list(_SPOOLS):
        spool._lock = threading.Lock()
        if spool._connection is not None:
            _INHERITED.append(spool._connection)
        spool._connection = None


os.register_at_fork(after_in_child=_reset_in_child)


class SpooledRecord:
    """A usage notification read back from the spool."""

    def __init__(self, record_id, instance_id, created_at, message):
        self.id = record_id
        self.instance_id = instance_id
        self.created_at = created_at
        self.message = message


class AppendResult:
    """The outcome of one append: counts of stored and dropped records."""

    def __init__(self, stored=0, dropped=0, replaced=0, size=0):
        self.stored = stored
        self.dropped = dropped
        self.replaced = replaced
        self.size = size


class Spool:
    """A bounded FIFO of usage notifications in an SQLite file.

    :param path: the SQLite file. It is created with its directory.
    :param max_records: the bound. When the spool is full, a start or end
        record replaces the oldest ``accelerator.usage.exists`` record,
        because the next audit period restates the content of an exists
        record. A record that finds none to replace is dropped.
    """

    def __init__(self, path, max_records):
        self.path = path
        self.max_records = max_records
        self.durable = True
        self._lock = threading.Lock()
        self._connection = None
        self._pid = None
        _SPOOLS.add(self)

    # Connection

    def _connect(self):
        if self._connection is not None:
            return self._connection

        try:
            self._connection = self._open(self.path)
        except sqlite3.OperationalError as error:
            # A lock held by another process is transient: the caller
            # reports the failed write and the next call opens again.
            if 'unable to open' not in str(error):
                raise
            self._connection = self._open_in_memory(error)
        except OSError as error:
            self._connection = self._open_in_memory(error)
        except sqlite3.DatabaseError as error:
            self._connection = self._recover(error)
        self._pid = os.getpid()
        return self._connection

    @staticmethod
    def _open(path):
        directory = os.path.dirname(path)
        if directory and path != ':memory:':
            os.makedirs(directory, exist_ok=True)

        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000.0,
            isolation_level=None, check_same_thread=False)
        try:
            connection.execute('PRAGMA journal_mode=WAL')
            connection.execute('PRAGMA synchronous=NORMAL')
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute('SELECT count(*) FROM records LIMIT 1')
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def _recover(self, error):
        """Move a corrupt spool file aside and start an empty one."""
        if not os.path.exists(self.path):
            return self._open_in_memory(error)

        aside = '%s.corrupt-%d' % (self.path, int(time.time()))
        LOG.error('The accelerator usage spool %(path)s cannot be read '
                  '(%(error)s). It is moved to %(aside)s and an empty spool '
                  'replaces it. Records in the old file are not sent: '
                  'inspect it with the sqlite3 tool.',
                  {'path': self.path, 'error': error, 'aside': aside})
        try:
            os.replace(self.path, aside)
            for suffix in ('-wal', '-shm'):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            return self._open(self.path)
        except (OSError, sqlite3.Error) as second_error:
            return self._open_in_memory(second_error)

    def _open_in_memory(self, error):
        LOG.error('The accelerator usage spool %(path)s cannot be opened '
                  '(%(error)s). Usage records are kept in memory only and '
                  'are lost if the service stops before they are sent. Fix '
                  'the path or its permissions and restart the service.',
                  {'path': self.path, 'error': error})
        self.durable = False
        return self._open(':memory:')

    def close(self):
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    # Records

    def append(self, messages):
        """Store usage notifications at the tail of the spool.

        :param messages: dicts with ``event_type`` and ``payload``.
        :returns: an :class:`AppendResult`.
        :raises sqlite3.Error: when the file cannot be written.
        """
        result = AppendResult()
        now = time.time()
        with self._lock:
            connection = self._connect()
            connection.execute('BEGIN IMMEDIATE')
            try:
                size = self._size(connection)
                for message in messages:
                    if size >= self.max_records:
                        if not self._replace_exists(connection, message):
                            result.dropped += 1
                            continue
                        result.replaced += 1
                        size -= 1

                    connection.execute(
                        'INSERT INTO records (instance_id, event_type, '
                        'created_at, body) VALUES (?, ?, ?, ?)',
                        (message['payload']['instance_id'],
                         message['event_type'], now,
                         jsonutils.dumps(message)))
                    size += 1
                    result.stored += 1
                self._set_size(connection, size)
                connection.execute('COMMIT')
            except BaseException:
                connection.execute('ROLLBACK')
                raise
        result.size = size
        return result

    @staticmethod
    def _replace_exists(connection, message):
        if message['event_type'] == events.EXISTS:
            return False

        row = connection.execute(
            'SELECT id FROM records WHERE event_type = ? ORDER BY id '
            'LIMIT 1', (events.EXISTS,)).fetchone()
        if row is None:
            return False
        connection.execute('DELETE FROM records WHERE id = ?', (row[0],))
        return True

    @staticmethod
    def _size(connection):
        return connection.execute(
            "SELECT value FROM counters WHERE name = 'records'").fetchone()[0]

    @staticmethod
    def _set_size(connection, size):
        connection.execute(
            "UPDATE counters SET value = ? WHERE name = 'records'", (size,))

    def head(self, limit, after_id=0):
        """Return the oldest records after ``after_id``, oldest first."""
        with self._lock:
            rows = self._connect().execute(
                'SELECT id, instance_id, created_at, body FROM records '
                'WHERE id > ? ORDER BY id LIMIT ?',
                (after_id, limit)).fetchall()

        # Parsed outside the lock, which the notifying thread waits for.
        records = []
        for record_id, instance_id, created_at, body in rows:
            records.append(SpooledRecord(
                record_id, instance_id, created_at, jsonutils.loads(body)))
        return records

    def update(self, record_id, message):
        """Replace the notification stored under ``record_id``."""
        with self._lock:
            self._connect().execute(
                'UPDATE records SET body = ? WHERE id = ?',
                (jsonutils.dumps(message), record_id))

    def delete(self, record_ids):
        """Delete sent records."""
        if not record_ids:
            return

        record_ids = list(record_ids)
        with self._lock:
            connection = self._connect()
            connection.execute('BEGIN IMMEDIATE')
            try:
                deleted = 0
                # SQLite allows 999 parameters per statement before 3.32.
                for start in range(0, len(record_ids), 500):
                    chunk = record_ids[start:start + 500]
                    deleted += connection.execute(
                        'DELETE FROM records WHERE id IN (%s)'
                        % ','.join('?' * len(chunk)), chunk).rowcount
                size = max(self._size(connection) - deleted, 0)
                self._set_size(connection, size)
                connection.execute('COMMIT')
            except BaseException:
                connection.execute('ROLLBACK')
                raise

    def size(self):
        """Return the number of spooled records."""
        with self._lock:
            return self._size(self._connect())
