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

"""The ``accelerator_usage`` oslo.messaging notification driver.

Nova loads the driver next to ``messagingv2`` and calls it for every
notification. The driver derives accelerator usage records from instance
lifecycle notifications, stores them in the local spool and returns: a
background sender publishes them. It never raises into Nova and never
waits for the broker.
"""

import os
import socket
import sqlite3
import threading

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging
from oslo_messaging.notify import notifier

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import cyborg
from sovereign_ai.notifications import events
from sovereign_ai.notifications import pci_alias
from sovereign_ai.notifications import sender
from sovereign_ai.notifications import spool
from sovereign_ai.notifications import usage

LOG = logging.getLogger(__name__)

DEFAULT_SOURCE_TOPICS = ['versioned_notifications']

# One spool and sender per spool path in a process, shared by all drivers.
_SENDERS = {}
_SENDERS_LOCK = threading.Lock()


def _reset_lock_in_child():
    global _SENDERS_LOCK
    _SENDERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def _options(conf):
    try:
        return conf[notifications_conf.GROUP.name]
    except cfg.NoSuchOptError:
        notifications_conf.register_opts(conf)
        return conf[notifications_conf.GROUP.name]


def _source_topics(conf, options):
    if options.source_topics:
        return options.source_topics
    try:
        return conf.notifications.versioned_notifications_topics
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return DEFAULT_SOURCE_TOPICS


def _service_host(conf):
    try:
        return conf.host
    except cfg.NoSuchOptError:
        return socket.gethostname()


def get_sender(conf, options):
    """Return the process's sender of the configured spool, started."""
    with _SENDERS_LOCK:
        usage_sender = _SENDERS.get(options.spool_path)
        if usage_sender is None:
            def transport_factory():
                return oslo_messaging.get_notification_transport(
                    conf, url=options.transport_url)

            resolver = cyborg.DeviceProfileResolver(
                conf, options.cyborg_cache_time,
                options.gpu_resource_classes)
            usage_sender = sender.Sender(
                spool.Spool(options.spool_path, options.spool_max_records),
                transport_factory, options,
                'sovereign-ai.%s' % _service_host(conf), resolver)
            _SENDERS[options.spool_path] = usage_sender
    usage_sender.ensure_started()
    return usage_sender


def stop_senders():
    """Stop every sender of this process; spooled records stay."""
    with _SENDERS_LOCK:
        for usage_sender in _SENDERS.values():
            usage_sender.stop()
            usage_sender.spool.close()
        _SENDERS.clear()


class AcceleratorUsageDriver(notifier.Driver):
    """Record the accelerator usage of instances from Nova notifications.

    The driver acts only when its notifier's topics include a versioned
    notification topic, so the legacy notifier's copy of the driver stays
    idle and no usage is counted twice.
    """

    def __init__(self, conf, topics, transport):
        super().__init__(conf, topics, transport)
        self._sender = None
        self._extractor = None

        try:
            options = _options(conf)
            source_topics = _source_topics(conf, options)
            if not set(topics or []) & set(source_topics):
                LOG.debug('accelerator_usage driver idle on topics %s: '
                          'it reads only %s', topics, source_topics)
                return

            self._extractor = usage.Extractor(
                pci_alias.load_aliases(conf), options.gpu_resource_classes,
                options.gpu_vendor_ids, options.model_names)
            self._sender = get_sender(conf, options)
        except Exception:
            # Nova logs and ignores a driver that fails to load only for
            # some errors; an idle driver is the safe outcome for all.
            LOG.exception('The accelerator_usage notification driver cannot '
                          'start and records no accelerator usage.')
            self._sender = None

    def notify(self, ctxt, message, priority, retry):
        if self._sender is None:
            return
        if not isinstance(message, dict):
            LOG.warning('Skipped a notification that is not a mapping but '
                        '%s.', type(message).__name__)
            return
        if message.get('event_type') not in events.USAGE_EVENTS:
            return

        try:
            self._record(ctxt, message)
        except Exception:
            LOG.exception('Recording accelerator usage from notification '
                          '%s failed; the notification is skipped.',
                          message.get('message_id'))

    def _record(self, ctxt, message):
        problems = []
        try:
            records = self._extractor.records(message, problems)
        except usage.InvalidNotification as error:
            LOG.warning('Skipped %(event)s notification %(id)s: %(error)s',
                        {'event': message.get('event_type'),
                         'id': message.get('message_id'), 'error': error})
            return

        if problems:
            LOG.warning('Skipped parts of %(event)s notification %(id)s: '
                        '%(problems)s',
                        {'event': message.get('event_type'),
                         'id': message.get('message_id'),
                         'problems': '; '.join(str(p) for p in problems)})
        if not records:
            return

        request_id = (ctxt or {}).get('request_id')
        for record in records:
            if not record['payload'].get('request_id'):
                record['payload']['request_id'] = request_id

        usage_sender = self._sender
        usage_sender.ensure_started()
        try:
            result = usage_sender.spool.append(records)
        except sqlite3.Error as error:
            LOG.error('The accelerator usage spool %(path)s cannot store '
                      '%(count)d records of notification %(id)s: %(error)s. '
                      'They are lost.',
                      {'path': usage_sender.spool.path,
                       'count': len(records),
                       'id': message.get('message_id'), 'error': error})
            return

        if result.dropped or result.replaced:
            LOG.error('The accelerator usage spool %(path)s is full '
                      '(%(size)d of %(max)d records): %(dropped)d records of '
                      'notification %(id)s were dropped and %(replaced)d '
                      'replaced older instance.exists records. Check the '
                      'broker connection.',
                      {'path': usage_sender.spool.path, 'size': result.size,
                       'max': usage_sender.spool.max_records,
                       'dropped': result.dropped,
                       'replaced': result.replaced,
                       'id': message.get('message_id')})
        usage_sender.wake()
