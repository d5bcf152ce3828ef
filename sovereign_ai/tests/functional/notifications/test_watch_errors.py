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

"""``sovereign-ai usage watch`` against a refusing or absent broker."""

import socket
import subprocess
import sys
import textwrap

import kombu

from sovereign_ai.tests.functional.notifications import base

# Runs the command in a child through sovereign_ai.cmd.main, as the console
# script does. With "python -m" the module would run as __main__, whose
# CommandError is not the class that the commands raise.
RUN = textwrap.dedent('''
    import sys

    from sovereign_ai.cmd import main

    sys.exit(main.main(sys.argv[1:]))
''')

# Runs the command in a child whose listener start is interrupted right
# after it declared the pool queue. The patch simulates a SIGINT at
# that moment, which a test cannot time.
INTERRUPTED_START = textwrap.dedent('''
    import sys

    from oslo_messaging._drivers import base

    from sovereign_ai.cmd import main

    real_start = base.PollStyleListenerAdapter.start

    def start(self, *args, **kwargs):
        real_start(self, *args, **kwargs)
        raise KeyboardInterrupt

    base.PollStyleListenerAdapter.start = start
    sys.exit(main.main(sys.argv[1:]))
''')


class TestWatchErrors(base.NotifierTestCase):

    def _watch(self, url, *extra, code=RUN):
        return subprocess.run(
            [sys.executable, '-c', code] + [
                'usage', 'watch', '--transport-url', url,
                '--topic', self.usage_topic, '--exchange', self.exchange]
            + list(extra),
            capture_output=True, text=True, timeout=60)

    def _delete_queue(self, url, name):
        with kombu.Connection(url, connect_timeout=5) as connection:
            connection.channel().queue_delete(name)

    def _last_line(self, result):
        return result.stderr.strip().splitlines()[-1]

    def test_wrong_password(self):
        host, port = base.rabbit_address()
        url = base.rabbit_url().replace(':guest@', ':wrong-secret@', 1)
        self.assertIn('wrong-secret', url)

        result = self._watch(url, '--connect-timeout', '1')

        self.assertEqual(2, result.returncode, result.stderr)
        line = self._last_line(result)
        self.assertIn('login refused by the broker at %s:%d' % (host, port),
                      line)
        self.assertNotIn('wrong-secret', result.stderr)

    def test_unknown_scheme(self):
        result = self._watch('foo://guest:hidden@127.0.0.1/',
                             '--connect-timeout', '1')

        self.assertEqual(2, result.returncode, result.stderr)
        line = self._last_line(result)
        self.assertIn('invalid transport URL foo://127.0.0.1', line)
        self.assertNotIn('hidden', result.stderr)

    def test_closed_port(self):
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            port = probe.getsockname()[1]
        url = base.with_address(base.rabbit_url(), '127.0.0.1', port)

        result = self._watch(url, '--connect-timeout', '1')

        self.assertEqual(2, result.returncode, result.stderr)
        line = self._last_line(result)
        self.assertIn('cannot connect to the broker at 127.0.0.1:%d' % port,
                      line)
        self.assertIn('within 1.0 seconds', line)

    def test_interrupted_start_deletes_queue(self):
        pool = 'sai-watch-int-%s' % self.run_id
        url = base.rabbit_url().replace('rabbit://', 'amqp://', 1)
        self.addCleanup(self._delete_queue, url, pool)

        result = self._watch(base.rabbit_url(), '--pool', pool,
                             code=INTERRUPTED_START)

        self.assertEqual(130, result.returncode, result.stderr)
        self.assertEqual('sovereign-ai: interrupted', self._last_line(result))
        with kombu.Connection(url, connect_timeout=5) as connection:
            self.assertRaises(
                connection.channel_errors,
                connection.channel().queue_declare, queue=pool, passive=True)
