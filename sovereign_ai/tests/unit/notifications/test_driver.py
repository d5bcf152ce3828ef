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

"""The accelerator_usage driver as oslo.messaging loads it."""

import logging
import os
import signal
import threading
import time

import fixtures
from oslo_config import cfg
import oslo_messaging

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import driver
from sovereign_ai.notifications import events
from sovereign_ai.tests import base
from sovereign_ai.tests.unit.notifications import samples

GROUP = notifications_conf.GROUP.name


class TestDriver(base.TestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.tempdir = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(driver.stop_senders)
        self.conf = cfg.ConfigOpts()
        self.conf([])
        notifications_conf.register_opts(self.conf)
        self.conf.set_override('spool_path',
                               os.path.join(self.tempdir, 'spool.sqlite'),
                               group=GROUP)
        # The fake driver of oslo.messaging replaces the broker.
        self.conf.set_override('transport_url', 'fake:/', group=GROUP)
        self.conf.set_override('retry_interval', 0.01, group=GROUP)
        from nova.conf import pci as nova_pci_conf
        nova_pci_conf.register_opts(self.conf)
        self.conf.set_override('alias', samples.PCI_ALIASES, group='pci')

    def _driver(self, topics=('versioned_notifications',)):
        transport = oslo_messaging.get_notification_transport(
            self.conf, url='fake:/')
        self.addCleanup(transport.cleanup)
        notifier = oslo_messaging.Notifier(
            transport, driver='accelerator_usage', topics=list(topics))
        return notifier._driver_mgr['accelerator_usage'].obj

    def _spooled(self, usage_driver):
        return [record.message
                for record in usage_driver._sender.spool.head(100)]

    def test_legacy_topics_idle(self):
        usage_driver = self._driver(topics=['notifications'])
        self.assertIsNone(usage_driver._sender)
        usage_driver.notify({}, samples.as_message(samples.own_sample()),
                            'INFO', None)
        self.assertEqual({}, driver._SENDERS)

    def test_nova_versioned_topics_option(self):
        from nova.conf import notifications as nova_notifications_conf
        nova_notifications_conf.register_opts(self.conf)
        self.conf.set_override('versioned_notifications_topics',
                               ['custom_versioned'], group='notifications')
        self.assertIsNone(self._driver()._sender)
        self.assertIsNotNone(self._driver(['custom_versioned'])._sender)

    def test_records_spooled_then_sent(self):
        usage_driver = self._driver()
        usage_driver._sender.stop()
        message = samples.as_message(samples.own_sample())

        usage_driver.notify({'request_id': 'req-ctx'}, message, 'INFO', None)

        spooled = self._spooled(usage_driver)
        self.assertEqual([events.START],
                         [record['event_type'] for record in spooled])

        usage_driver._sender.ensure_started()
        deadline = time.monotonic() + 10
        while usage_driver._sender.spool.size() and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(0, usage_driver._sender.spool.size())
        self.assertEqual(1, usage_driver._sender.sent)

    def test_context_request_id_fallback(self):
        usage_driver = self._driver()
        usage_driver._sender.stop()
        message = samples.as_message(samples.own_sample())
        del message['payload']['nova_object.data']['request_id']

        usage_driver.notify({'request_id': 'req-ctx'}, message, 'INFO', None)

        self.assertEqual('req-ctx',
                         self._spooled(usage_driver)[0]['payload']
                         ['request_id'])

    def test_malformed_logged_once(self):
        usage_driver = self._driver()
        usage_driver._sender.stop()
        message = samples.as_message(samples.own_sample(),
                                     message_id='bad-msg-1')
        message['payload']['nova_object.version'] = '7.0'

        self.assertIsNone(usage_driver.notify({}, message, 'INFO', None))

        self.assertEqual(1, self.log.output.count('bad-msg-1'))
        self.assertIn('unsupported version 7.0', self.log.output)
        self.assertEqual([], self._spooled(usage_driver))

    def test_unknown_alias_logged_once(self):
        usage_driver = self._driver()
        usage_driver._sender.stop()
        message = samples.as_message(
            samples.own_sample(), message_id='bad-msg-2',
            extra_specs={'pci_passthrough:alias': 'b200:8'})

        usage_driver.notify({}, message, 'INFO', None)

        self.assertEqual(1, self.log.output.count('bad-msg-2'))
        self.assertIn("unknown PCI alias 'b200'", self.log.output)
        self.assertEqual([], self._spooled(usage_driver))

    def test_non_dict_payload_no_raise(self):
        usage_driver = self._driver()
        message = {'event_type': 'instance.create.end', 'payload': 'text',
                   'message_id': 'bad-msg-3'}
        self.assertIsNone(usage_driver.notify({}, message, 'INFO', None))
        self.assertIn('bad-msg-3', self.log.output)

    def test_non_mapping_message_no_raise(self):
        usage_driver = self._driver()

        for message in (None, ['instance.create.end'], 'text'):
            self.assertIsNone(
                usage_driver.notify({}, message, 'INFO', None))

        self.assertIn('not a mapping but NoneType', self.log.output)
        self.assertIn('not a mapping but list', self.log.output)
        self.assertEqual([], self._spooled(usage_driver))

    def test_unexpected_error_no_raise(self):
        usage_driver = self._driver()
        message = samples.as_message(samples.own_sample(),
                                     message_id='bad-msg-4')
        # A None context and an extractor that breaks: both are logged.
        usage_driver._extractor = None
        self.assertIsNone(usage_driver.notify(None, message, 'INFO', None))
        self.assertIn('bad-msg-4 failed', self.log.output)

    def test_forked_child_sends(self):
        usage_driver = self._driver()
        parent_thread = usage_driver._sender._thread

        # Another thread holds the spool lock at fork time, as when the
        # sender thread reads the spool while a worker process is forked.
        holding = threading.Event()
        release = threading.Event()

        def hold_lock():
            with usage_driver._sender.spool._lock:
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        holding.wait(30)
        pid = os.fork()
        if pid == 0:
            # The child reports through its exit status only, and a child
            # that deadlocks is killed by the alarm.
            signal.alarm(20)
            status = 1
            try:
                usage_driver.notify(
                    {}, samples.as_message(samples.own_sample()), 'INFO',
                    None)
                child_sender = usage_driver._sender
                if (child_sender._pid == os.getpid()
                        and child_sender._thread is not parent_thread
                        and child_sender._thread.is_alive()):
                    status = 0
            finally:
                os._exit(status)

        release.set()
        holder.join()
        _pid, status = os.waitpid(pid, 0)
        self.assertEqual(0, os.waitstatus_to_exitcode(status))
        self.assertTrue(parent_thread.is_alive())

    def test_one_sender_per_spool(self):
        first = self._driver()
        second = self._driver()
        self.assertIs(first._sender, second._sender)
