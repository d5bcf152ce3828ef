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

"""Accelerator usage notifications of GPU servers.

The test reads the notifications with the project's own listener,
``sovereign-ai usage watch --format json``, in a pool of its own, so it
takes no message from other consumers such as Ceilometer, and the watcher
deletes its queue when it stops.
"""

import json
import signal
import subprocess
import sys
import threading
import time
import uuid

from tempest import config
from tempest.lib import decorators

from sovereign_ai.tests.tempest.scenario import base

CONF = config.CONF

# Seconds the watcher gets to import oslo.messaging and declare its queue
# before the test boots a server. Notifications sent before the queue
# exists are lost.
# NOTE: an estimate; the watcher prints nothing when it is ready.
WATCHER_START_SECONDS = 5


class _Watcher(object):
    """A ``sovereign-ai usage watch`` process and the records it printed."""

    def __init__(self, url, topic, exchange):
        self.records = []
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, '-m', 'sovereign_ai.cmd.main', 'usage', 'watch',
             '--transport-url', url, '--topic', topic, '--exchange',
             exchange, '--format', 'json', '--pool',
             'sovereign-ai-tempest-%s' % uuid.uuid4().hex[:8]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self._process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.records.append(record)

    def find(self, event_type, instance_id):
        with self._lock:
            return [record['payload'] for record in self.records
                    if record.get('event_type') == event_type
                    and record['payload'].get('instance_id') == instance_id]

    def event_types(self):
        with self._lock:
            return [record.get('event_type') for record in self.records]

    def stop(self):
        """Stop the watcher with SIGINT, so it deletes its queue."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.stderr.read()


@decorators.serial
class AcceleratorUsageTest(base.GpuScenarioTest):
    """Check the start and end notifications of a GPU server."""

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.sovereign_ai_feature_enabled.accelerator_usage_notifier:
            raise cls.skipException(
                '[sovereign_ai_feature_enabled] accelerator_usage_notifier '
                'is off.')
        if not CONF.sovereign_ai.notification_transport_url:
            raise cls.skipException(
                '[sovereign_ai] notification_transport_url is unset.')

    def setUp(self):
        super().setUp()
        self.watcher = _Watcher(CONF.sovereign_ai.notification_transport_url,
                                CONF.sovereign_ai.notification_topic,
                                CONF.sovereign_ai.notification_exchange)
        self.addCleanup(self.watcher.stop)
        time.sleep(WATCHER_START_SECONDS)

    def _wait_for(self, event_type, instance_id):
        deadline = time.monotonic() + CONF.sovereign_ai.notification_timeout
        while time.monotonic() < deadline:
            found = self.watcher.find(event_type, instance_id)
            if found:
                return found
            time.sleep(0.5)
        self.fail('No %s notification for server %s within %d s; received: '
                  '%s.' % (event_type, instance_id,
                           CONF.sovereign_ai.notification_timeout,
                           self.watcher.event_types()))

    def _check_payload(self, payload, server_id, host, count, level):
        self.assertEqual(server_id, payload['instance_id'])
        self.assertEqual(host, payload['host'])
        self.assertEqual(count, payload['count'])
        self.assertTrue(payload['count_known'])
        self.assertEqual(CONF.sovereign_ai.gpu_alias, payload['pci_alias'])
        self.assertEqual(level, payload['gpu_affinity'])
        self.assertEqual('passthrough_gpu', payload['accelerator_kind'])

    @decorators.idempotent_id('5f9d3886-deed-48ed-a1b4-b2aad861a850')
    def test_boot_and_delete(self):
        flavor = self.create_gpu_flavor(2, level='numa')
        server_id = self.boot(flavor)
        host = self.host_of(server_id)

        starts = self._wait_for('accelerator.usage.start', server_id)
        self.assertEqual(1, len(starts), starts)
        self._check_payload(starts[0], server_id, host, 2, 'numa')

        self.delete(server_id)
        ends = self._wait_for('accelerator.usage.end', server_id)
        self.assertEqual(1, len(ends), ends)
        self._check_payload(ends[0], server_id, host, 2, 'numa')
