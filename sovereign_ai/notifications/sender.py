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

"""Background sender that drains the spool to the message broker.

The sender runs in a daemon thread. Under eventlet monkey patching, as in
Nova services started with eventlet, the thread is a green thread whose
broker I/O yields to the hub. With native threads it is an OS thread. Only
one process sends from a spool file at a time: the sender holds an
exclusive ``flock`` on ``<spool>.lock`` while it runs, and the senders of
other processes that share the spool only append.
"""

import fcntl
import os
import threading
import time
import weakref

from oslo_log import log as logging
import oslo_messaging
from oslo_utils import timeutils

from sovereign_ai.notifications import cyborg
from sovereign_ai.notifications import usage

LOG = logging.getLogger(__name__)

PRIORITY = 'info'

# Seconds an idle sender waits before it looks at the spool again, for
# records that another process appended.
IDLE_INTERVAL = 2.0

# A failed send is logged at ERROR on the first failure and then once per
# this many seconds while the outage lasts.
ERROR_LOG_INTERVAL = 60.0


# Senders of this process, reset in a forked child (see _reset_in_child).
_SENDERS = weakref.WeakSet()

# Transports and lock files inherited from the parent, whose sockets and
# locks the parent still uses. A child keeps them here and never uses them.
_INHERITED = []


def _reset_in_child():
    # The parent's thread does not run in the child, and a lock that it held
    # at fork time would stay locked forever.
    for usage_sender in list(_SENDERS):
        _INHERITED.append((usage_sender._transport, usage_sender._lock_file))
        usage_sender._transport = None
        usage_sender._lock_file = None
        usage_sender._thread = None
        usage_sender._wakeup = threading.Event()
        usage_sender._stopped = threading.Event()
        usage_sender._start_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_in_child)


class Sender:
    """Send spooled usage notifications in order, deleting sent ones.

    :param spool: a :class:`sovereign_ai.notifications.spool.Spool`.
    :param transport_factory: a callable that returns an oslo.messaging
        notification transport, called in the sender thread.
    :param options: the [sovereign_ai_notifications] option group.
    :param publisher_id: the publisher id of the sent notifications.
    :param resolver: a :class:`cyborg.DeviceProfileResolver` or None.
    """

    def __init__(self, spool, transport_factory, options, publisher_id,
                 resolver=None):
        self.spool = spool
        self.transport_factory = transport_factory
        self.options = options
        self.publisher_id = publisher_id
        self.resolver = resolver
        self.sent = 0
        self._transport = None
        self._wakeup = threading.Event()
        self._stopped = threading.Event()
        self._thread = None
        self._pid = None
        self._lock_file = None
        self._start_lock = threading.Lock()
        self._failures = 0
        self._last_error_log = 0.0
        _SENDERS.add(self)

    # Thread control

    def ensure_started(self):
        """Start the thread in this process unless it runs already."""
        if self._thread is not None:
            return

        with self._start_lock:
            if self._thread is not None:
                return
            self._pid = os.getpid()
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._run, name='accelerator-usage-sender',
                daemon=True)
            self._thread.start()

    def wake(self):
        self._wakeup.set()

    def stop(self, timeout=10):
        """Stop the thread; records not yet sent stay in the spool."""
        self._stopped.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _run(self):
        LOG.info('Accelerator usage sender started for spool %s',
                 self.spool.path)
        while not self._stopped.is_set():
            try:
                pause = self._pass()
            except Exception:
                LOG.exception('The accelerator usage sender failed on spool '
                              '%s; it tries again.', self.spool.path)
                pause = self._backoff()

            if pause:
                self._wakeup.wait(pause)
                self._wakeup.clear()
        LOG.info('Accelerator usage sender stopped for spool %s',
                 self.spool.path)

    def _backoff(self):
        self._failures += 1
        interval = self.options.retry_interval * 2 ** (self._failures - 1)
        return min(interval, self.options.retry_max_interval)

    def _hold_spool(self):
        """Take the spool's sender lock; return False when another holds it."""
        if self._lock_file is not None or not self.spool.durable:
            return True

        lock_file = open(self.spool.path + '.lock', 'a')
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            return False
        self._lock_file = lock_file
        return True

    # Sending

    def _pass(self):
        """Send one batch; return the seconds to wait before the next."""
        if not self._hold_spool():
            return IDLE_INTERVAL

        # Records that wait for Cyborg are skipped, so a pass reads further
        # pages until it finds records to send or reaches the end.
        deferred = set()
        after_id = 0
        sent_ids = []
        while True:
            records = self.spool.head(self.options.send_batch_size, after_id)
            if not records:
                break
            after_id = records[-1].id

            try:
                sent_ids = self._send_records(records, deferred)
            except Exception as error:
                # MessageDeliveryFailure in most cases, but a connection
                # that cannot be created raises the kombu error itself.
                self._log_send_failure(error)
                return self._backoff()
            if sent_ids:
                break

        if self._failures and sent_ids:
            LOG.info('Accelerator usage notifications are sent again after '
                     '%d failed attempts; %d records remain in the spool.',
                     self._failures, self.spool.size())
            self._failures = 0

        if after_id == 0:
            return IDLE_INTERVAL
        if deferred and not records:
            # Every record left waits for Cyborg: wait before asking again.
            return cyborg.FAILURE_CACHE_TIME
        return 0

    def _send_records(self, records, deferred):
        """Send records in order and delete the sent ones.

        :param deferred: ids of instances whose records wait for Cyborg;
            updated in place.
        :returns: the ids of the sent records.
        """
        sent_ids = []
        try:
            for record in records:
                if record.instance_id in deferred:
                    continue

                if not self._resolve_count(record):
                    # Later records of this instance wait, to keep its order.
                    deferred.add(record.instance_id)
                    continue

                self._send(record.message)
                sent_ids.append(record.id)
                # Hand the GIL to the service's threads between messages,
                # so a long backlog does not delay their notify calls.
                time.sleep(0)
        finally:
            self.spool.delete(sent_ids)
            self.sent += len(sent_ids)
        return sent_ids

    def _send(self, message):
        if self._transport is None:
            self._transport = self.transport_factory()

        wire = dict(message)
        wire['publisher_id'] = self.publisher_id
        wire['priority'] = PRIORITY.upper()
        wire.setdefault('timestamp', str(timeutils.utcnow()))

        for topic in self.options.topics:
            target = oslo_messaging.Target(
                topic='%s.%s' % (topic, PRIORITY),
                exchange=self.options.exchange)
            # NOTE: oslo.messaging's notification drivers log and swallow
            # send errors, so the sender calls the transport method they
            # use. It raises MessageDeliveryFailure unless the broker
            # confirmed the message (RabbitMQ publisher confirms).
            # NOTE: on a link that drops packets silently, a publish waits
            # until the RabbitMQ heartbeat
            # ([oslo_messaging_rabbit] heartbeat_timeout_threshold) closes
            # the connection. Only refused and reset connections are tested.
            self._transport._send_notification(
                target, {}, wire, version=2.0, retry=0)

    def _log_send_failure(self, error):
        now = time.monotonic()
        if self._failures == 0 or now - self._last_error_log >= \
                ERROR_LOG_INTERVAL:
            LOG.error('Sending accelerator usage notifications failed: '
                      '%(error)s. %(size)d records wait in the spool '
                      '%(path)s and are sent when the broker accepts them.',
                      {'error': error, 'size': self.spool.size(),
                       'path': self.spool.path})
            self._last_error_log = now

    def _resolve_count(self, record):
        """Fill in the GPU count of a Cyborg record.

        :returns: False when the record must wait for Cyborg.
        """
        payload = record.message['payload']
        if (payload.get('accelerator_kind') != usage.KIND_CYBORG
                or payload.get('count_known')
                or payload.get('count_lookup_failed')):
            return True

        profile = payload.get('device_profile')
        try:
            if self.resolver is None:
                raise cyborg.CyborgNotConfigured('no Cyborg client')
            payload['count'] = self.resolver.count(profile)
            payload['count_known'] = True
        except cyborg.CyborgUnavailable as error:
            waited = time.time() - record.created_at
            if waited < self.options.cyborg_max_wait:
                LOG.debug('Device profile %s of instance %s waits for '
                          'Cyborg: %s', profile, record.instance_id, error)
                return False
            LOG.error('Cyborg could not be reached for %(waited)d seconds '
                      '(%(error)s); the usage record of instance '
                      '%(instance)s is sent with an unknown GPU count.',
                      {'waited': waited, 'error': error,
                       'instance': record.instance_id})
            payload['count_lookup_failed'] = True
        except (cyborg.CyborgNotConfigured,
                cyborg.DeviceProfileNotFound) as error:
            LOG.error('The GPU count of device profile %(profile)s of '
                      'instance %(instance)s is unknown (%(error)s); the '
                      'usage record is sent with count null.',
                      {'profile': profile, 'instance': record.instance_id,
                       'error': error})
            payload['count_lookup_failed'] = True

        self.spool.update(record.id, record.message)
        return True
