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

"""A real Notifier with the accelerator_usage driver and a real listener."""

import time
import uuid

from sovereign_ai.notifications import events
from sovereign_ai.notifications import usage
from sovereign_ai.tests.functional.notifications import base


class TestEndToEnd(base.NotifierTestCase):

    def test_tagged_notifications_arrive(self):
        collector = self.start_listener()
        notifier = self.make_notifier(self.make_conf())
        ctxt = {'request_id': 'req-%s' % uuid.uuid4()}

        sent = []
        for index, event_type in enumerate(
                ['instance.create.end', 'instance.exists',
                 'instance.delete.end']):
            message = base.gpu_message(index, instance_id='inst-1',
                                       event_type=event_type)
            notifier.info(ctxt, event_type, message['payload'])
            sent.append(event_type)

        self.assertTrue(collector.wait_for_count(3))

        received = collector.messages
        self.assertEqual(
            [events.START, events.EXISTS, events.END],
            [message['event_type'] for message in received])
        for message in received:
            payload = message['payload']
            self.assertEqual('inst-1', payload['instance_id'])
            self.assertEqual('A100-SXM4-40GB', payload['model'])
            self.assertEqual(4, payload['count'])
            self.assertEqual(usage.KIND_PASSTHROUGH,
                             payload['accelerator_kind'])
            self.assertTrue(payload['source_message_id'])
            self.assertTrue(message['publisher_id'].startswith(
                'sovereign-ai.'))

    def test_legacy_notifier_idle(self):
        collector = self.start_listener()
        conf = self.make_conf()
        legacy = self.make_notifier(conf, topics=['notifications'])
        versioned = self.make_notifier(conf)
        legacy_driver = legacy._driver_mgr['accelerator_usage'].obj

        legacy.info({}, 'instance.create.end',
                    base.gpu_message(1, instance_id='inst-2')['payload'])
        versioned.info({}, 'instance.delete.end',
                       base.gpu_message(2, instance_id='inst-2')['payload'])

        self.assertIsNone(legacy_driver._sender)
        self.assertTrue(collector.wait_for_count(1))
        time.sleep(1)
        self.assertEqual([events.END], [message['event_type']
                                        for message in collector.messages])
