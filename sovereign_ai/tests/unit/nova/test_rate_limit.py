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

from unittest import mock

from sovereign_ai.nova import rate_limit
from sovereign_ai.tests import base


class TestWarningLimiter(base.TestCase):

    def setUp(self):
        super().setUp()
        self.logger = mock.Mock()
        self.interval = 300
        self.limiter = rate_limit.WarningLimiter(
            self.logger, lambda: self.interval)
        self.now = 1000.0
        patcher = mock.patch.object(rate_limit.time, 'monotonic',
                                    side_effect=lambda: self.now)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_repeat_suppressed(self):
        self.limiter.warn('host1', 'Host %(host)s is odd.', {'host': 'h1'})
        self.limiter.warn('host1', 'Host %(host)s is odd.', {'host': 'h1'})

        self.assertEqual(1, self.logger.warning.call_count)

    def test_other_key_logged(self):
        self.limiter.warn('host1', 'Host %(host)s is odd.', {'host': 'h1'})
        self.limiter.warn('host2', 'Host %(host)s is odd.', {'host': 'h2'})

        self.assertEqual(2, self.logger.warning.call_count)

    def test_suppressed_count_reported(self):
        for _ in range(3):
            self.limiter.warn('host1', 'Host %(host)s is odd.',
                              {'host': 'h1'})
        self.now += 301

        self.limiter.warn('host1', 'Host %(host)s is odd.', {'host': 'h1'})

        message, params = self.logger.warning.call_args[0]
        self.assertIn('%(suppressed)d more such warnings', message)
        self.assertEqual(2, params['suppressed'])
        self.assertEqual(300, params['interval'])
        self.assertEqual('h1', params['host'])

    def test_interval_zero_logs_all(self):
        self.interval = 0

        for _ in range(3):
            self.limiter.warn('host1', 'Host is odd.', {})

        self.assertEqual(3, self.logger.warning.call_count)

    def test_table_bounded(self):
        with mock.patch.object(rate_limit, 'REMEMBERED_KEYS', 2):
            for key in ('a', 'b', 'c'):
                self.limiter.warn(key, 'Key is odd.', {})
            # 'a' was forgotten, so it is logged again at once.
            self.limiter.warn('a', 'Key is odd.', {})

        self.assertEqual(4, self.logger.warning.call_count)
