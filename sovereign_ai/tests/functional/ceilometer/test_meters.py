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

"""Ceilometer's own meter code turns usage notifications into samples.

The driver sends to RabbitMQ, an oslo.messaging batch listener delivers
to Ceilometer's ProcessMeterNotifications endpoint loaded with
etc/ceilometer/meters.d/accelerator.yaml, and the samples it publishes are
checked.
"""

import os
import threading
import time

import oslo_messaging

from sovereign_ai.notifications import usage
from sovereign_ai.tests import base as tests_base
from sovereign_ai.tests.functional.notifications import base

METERS_DIR = os.path.join(tests_base.REPO_ROOT, 'etc', 'ceilometer',
                          'meters.d')


class _SampleCollector:
    """A Ceilometer publisher context that keeps the samples."""

    def __init__(self):
        self.samples = []
        self._lock = threading.Lock()

    def __enter__(self):
        return self._publish

    def __exit__(self, *exc_info):
        return False

    def _publish(self, samples):
        with self._lock:
            self.samples.extend(samples)


class TestMeters(base.NotifierTestCase):

    def setUp(self):
        super().setUp()
        try:
            from ceilometer.meter import notifications as meter_notifications
            from ceilometer import service
        except ImportError as error:
            self.skipTest('Ceilometer is not installed (%s): run "tox -e '
                          'ceilometer", which installs it.' % error)

        self.ceilometer_conf = service.prepare_service(
            ['ceilometer'], config_files=[])
        self.ceilometer_conf.set_override(
            'meter_definitions_dirs', [METERS_DIR], group='meter')
        self.collector = _SampleCollector()
        self.endpoint = meter_notifications.ProcessMeterNotifications(
            self.ceilometer_conf, self.collector)

    def _listen(self):
        transport = oslo_messaging.get_notification_transport(
            self.ceilometer_conf, url=base.rabbit_url())
        listener = oslo_messaging.get_batch_notification_listener(
            transport,
            [oslo_messaging.Target(topic=self.usage_topic,
                                   exchange=self.exchange)],
            [self.endpoint], executor='threading', batch_size=10,
            batch_timeout=0.2)
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            transport.cleanup()

        self.addCleanup(stop)

    def _wait_samples(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.collector.samples) >= count:
                return self.collector.samples
            time.sleep(0.1)
        self.fail('%d samples arrived, expected %d'
                  % (len(self.collector.samples), count))

    def test_definitions_loaded(self):
        names = [definition.cfg['name']
                 for definition in self.endpoint.definitions]
        self.assertEqual(['accelerator.gpu'], names)

    def test_gpu_meter_samples(self):
        self._listen()
        notifier = self.make_notifier(self.make_conf())
        events = ['instance.create.end', 'instance.exists',
                  'instance.delete.end']
        for index, event_type in enumerate(events):
            message = base.gpu_message(index, instance_id='inst-c')
            notifier.info({}, event_type, message['payload'])

        samples = sorted(self._wait_samples(3),
                         key=lambda s: ['accelerator.usage.start',
                                        'accelerator.usage.exists',
                                        'accelerator.usage.end'].index(
                             s.resource_metadata['usage_event']))

        for sample in samples:
            self.assertEqual('accelerator.gpu', sample.name)
            self.assertEqual('gauge', sample.type)
            self.assertEqual('gpu', sample.unit)
            self.assertEqual(4, sample.volume)
            self.assertEqual('inst-c', sample.resource_id)
            self.assertEqual('3a9d0c1e5f2b4e7d8c6a1b0f9e8d7c6b',
                             sample.project_id)
            self.assertEqual('8e1f6b0c2d3a4b5c9d8e7f6a5b4c3d2e',
                             sample.user_id)
            metadata = sample.resource_metadata
            self.assertEqual('A100-SXM4-40GB', metadata['model'])
            self.assertEqual(usage.KIND_PASSTHROUGH,
                             metadata['accelerator_kind'])
            self.assertEqual('nvlink', metadata['gpu_affinity'])
            self.assertEqual('gpu-node-07', metadata['host'])
            self.assertTrue(metadata['source_message_id'])
        self.assertEqual(
            ['instance.create.end', 'instance.exists', 'instance.delete.end'],
            [s.resource_metadata['source_event_type'] for s in samples])

    def test_unknown_count_no_volume(self):
        self._listen()
        notifier = self.make_notifier(self.make_conf(cyborg_max_wait=0))
        message = base.gpu_message(
            1, instance_id='inst-d')
        flavor = message['payload']['nova_object.data']['flavor']
        flavor['nova_object.data']['extra_specs'] = {
            'accel:device_profile': 'gpu-profile'}
        notifier.info({}, 'instance.create.end', message['payload'])

        sample = self._wait_samples(1)[0]

        self.assertIsNone(sample.volume)
        self.assertEqual(usage.KIND_CYBORG,
                         sample.resource_metadata['accelerator_kind'])
        self.assertEqual('gpu-profile', sample.resource_metadata['model'])
