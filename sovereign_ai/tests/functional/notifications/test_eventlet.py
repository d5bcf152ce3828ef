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

"""The driver and its sender under eventlet monkey patching, as in Nova."""

import os
import subprocess
import sys

from testtools import content

from sovereign_ai.tests.functional.notifications import base

NOTIFICATIONS = 300

# Nova services started with eventlet patch the standard library before
# they import anything else; the child does the same.
LAUNCHER = (
    'import eventlet; eventlet.monkey_patch(); import sys; '
    'from sovereign_ai.tests.functional.notifications import notifier_child; '
    'import eventlet.patcher; '
    'assert eventlet.patcher.is_monkey_patched("thread"); '
    'sys.exit(notifier_child.main(sys.argv[1:]))')


class TestEventlet(base.NotifierTestCase):

    def test_green_sender_delivers(self):
        collector = self.start_listener()
        config = self.write_child_config(base.rabbit_url())
        progress = os.path.join(self.tempdir, 'progress')

        child = subprocess.run(
            [sys.executable, '-c', LAUNCHER, '--config-file', config,
             '--count', str(NOTIFICATIONS), '--progress', progress,
             '--versioned-topic', self.versioned_topic],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

        self.assertEqual(0, child.returncode, child.stderr)
        expected = base.instance_ids(NOTIFICATIONS)
        collector.wait_for_instances(expected, timeout=30)
        counts = base.delivery_counts(collector, expected)
        self.addDetail('counts', content.text_content(str(counts)))
        self.assertEqual(0, counts['missing'])
