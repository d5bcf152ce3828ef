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

import contextlib
import io
import os
from unittest import mock

from sovereign_ai.cmd import main
from sovereign_ai.tests import base


class FailingCommand(main.Command):
    help = 'A command that raises the exception it is given.'

    def __init__(self, error):
        self.error = error

    def run(self, args):
        raise self.error


class TestMain(base.TestCase):
    """Exit statuses and messages of the command line dispatcher."""

    def run_main(self, error, *arguments):
        parser = main.argparse.ArgumentParser(prog='sovereign-ai')
        parser.add_argument('--debug', action='store_true')
        subparsers = parser.add_subparsers(dest='command')
        subparser = subparsers.add_parser('failing')
        subparser.set_defaults(command_object=FailingCommand(error))

        stderr = io.StringIO()
        with mock.patch.object(main, 'build_parser', return_value=parser):
            with contextlib.redirect_stderr(stderr):
                status = main.main(list(arguments) + ['failing'])
        return status, stderr.getvalue()

    def test_command_error_status(self):
        status, stderr = self.run_main(
            main.CommandError('invalid --seeds 0', exit_status=2))

        self.assertEqual(2, status)
        self.assertEqual('sovereign-ai: error: invalid --seeds 0\n', stderr)

    def test_unexpected_error_one_line(self):
        status, stderr = self.run_main(RuntimeError('disk full.'))

        self.assertEqual(1, status)
        self.assertEqual(1, len(stderr.splitlines()))
        self.assertIn('failing failed unexpectedly: disk full.', stderr)
        self.assertIn('"sovereign-ai --debug failing ..."', stderr)
        self.assertNotIn('Traceback', stderr)

    def test_unexpected_error_debug_raises(self):
        self.assertRaises(RuntimeError, self.run_main,
                          RuntimeError('disk full'), '--debug')

    def test_broken_pipe_quiet(self):
        # The dispatcher points standard output at /dev/null; keep the
        # test runner's descriptor 1 intact.
        saved = os.dup(1)
        self.addCleanup(os.close, saved)
        self.addCleanup(os.dup2, saved, 1)

        status, stderr = self.run_main(BrokenPipeError())

        self.assertEqual(main.EXIT_BROKEN_PIPE, status)
        self.assertEqual('', stderr)

    def test_interrupt_status(self):
        status, stderr = self.run_main(KeyboardInterrupt())

        self.assertEqual(130, status)
        self.assertEqual('sovereign-ai: interrupted\n', stderr)
