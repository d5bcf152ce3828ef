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

"""Broker outages between the sender and RabbitMQ lose no usage record."""

import time

from testtools import content

from sovereign_ai.tests.functional.notifications import base

NOTIFICATIONS = 2500


class TestOutage(base.NotifierTestCase):

    def test_proxy_cut_loses_nothing(self):
        proxy = base.TcpProxy(base.rabbit_address())
        proxy.start()
        self.addCleanup(proxy.stop)
        collector = self.start_listener()
        conf = self.make_conf(sender_url=base.with_address(
            base.rabbit_url(), '127.0.0.1', proxy.port))
        notifier = self.make_notifier(conf)

        for index in range(NOTIFICATIONS):
            if index == NOTIFICATIONS // 3:
                proxy.cut()
            if index == 2 * NOTIFICATIONS // 3:
                time.sleep(0.5)
                proxy.restore()
            notifier.info({}, 'instance.create.end',
                          base.gpu_message(index)['payload'])

        expected = base.instance_ids(NOTIFICATIONS)
        collector.wait_for_instances(expected, timeout=60)
        counts = base.delivery_counts(collector, expected)
        self.addDetail('counts', content.text_content(
            'sent=%(sent)d received=%(received)d duplicates=%(duplicates)d '
            'missing=%(missing)d' % counts))
        self.assertEqual(0, counts['missing'])
        self.assertEqual(NOTIFICATIONS, counts['sent'])
