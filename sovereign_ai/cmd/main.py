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

"""The ``sovereign-ai`` command line.

Each subcommand is a :class:`Command` registered in the
``sovereign_ai.commands`` entry point group, so a subcommand whose
dependencies are missing (Nova for ``simulate``, for example) reports that
in one line instead of breaking the others.
"""

import argparse
import os
import sys

import stevedore

COMMAND_NAMESPACE = 'sovereign_ai.commands'

# Exit status for invalid input: a bad option, a missing file or a
# malformed row. argparse uses the same status for usage errors.
EXIT_INVALID_INPUT = 2

# Exit status of a command whose reader closed standard output early, as
# when its output is piped into head: 128 plus the number of SIGPIPE.
EXIT_BROKEN_PIPE = 141


class CommandError(Exception):
    """An error that ends a command with a one-line message.

    :param message: the text printed after ``sovereign-ai: error:``.
    :param exit_status: the process exit status.
    """

    def __init__(self, message, exit_status=EXIT_INVALID_INPUT):
        super().__init__(message)
        self.exit_status = exit_status


class Command:
    """Base class of a subcommand."""

    #: One line shown by ``sovereign-ai --help``.
    help = ''

    def add_arguments(self, parser):
        """Add the subcommand's options to its argparse parser."""

    def run(self, args):
        """Run the subcommand and return the process exit status."""
        raise NotImplementedError


def _load_commands(parser):
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    load_errors = {}

    def _record_failure(manager, entry_point, error):
        load_errors[entry_point.name] = error

    manager = stevedore.ExtensionManager(
        COMMAND_NAMESPACE,
        invoke_on_load=True,
        on_load_failure_callback=_record_failure)

    for extension in sorted(manager, key=lambda ext: ext.name):
        command = extension.obj
        subparser = subparsers.add_parser(
            extension.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(command_object=command)

    for name, error in sorted(load_errors.items()):
        subparser = subparsers.add_parser(
            name, help='unavailable: %s' % error)
        subparser.set_defaults(command_object=None, load_error=error)

    return subparsers


def build_parser():
    parser = argparse.ArgumentParser(
        prog='sovereign-ai',
        description='Operator tools for GPU clouds built on OpenStack.')
    parser.add_argument(
        '--debug', action='store_true',
        help='Show the full traceback when a command fails unexpectedly.')
    _load_commands(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command is None:
        parser.print_help()
        return EXIT_INVALID_INPUT

    command = args.command_object
    if command is None:
        print('sovereign-ai: error: the %s command cannot be loaded: %s. '
              'Install the missing dependency, for example with '
              '"pip install sovereign-ai[all]".'
              % (args.command, args.load_error), file=sys.stderr)
        return 1

    try:
        return command.run(args)
    except CommandError as error:
        print('sovereign-ai: error: %s' % error, file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print('sovereign-ai: interrupted', file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Python flushes standard output again at exit; point it at
        # /dev/null so that the closed pipe raises no second error.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            # Standard output is not a file descriptor, as in tests.
            pass
        return EXIT_BROKEN_PIPE
    except Exception as error:
        if args.debug:
            raise
        print('sovereign-ai: error: %s %s failed unexpectedly: %s. Run '
              '"%s --debug %s ..." to see the traceback.'
              % (parser.prog, args.command, str(error).rstrip('.'),
                 parser.prog, args.command), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
