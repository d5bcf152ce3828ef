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

"""The ``sovereign-ai usage`` command: watch and report accelerator usage."""

import csv
import json
import ssl
import sys
import threading
import urllib.parse

from oslo_config import cfg
from oslo_utils import timeutils

from sovereign_ai.cmd import main
from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import report

# Nova sets this control exchange, and the driver's sender inherits it
# unless [sovereign_ai_notifications] exchange is set.
NOVA_CONTROL_EXCHANGE = 'nova'

DEFAULT_POOL = 'sovereign-ai-usage-watch'

REPORT_COLUMNS = ('project_id', 'model', 'kind', 'instances', 'gpu_hours',
                  'unknown_count_hours')

DEFAULT_CONNECT_TIMEOUT = 30.0


class UsageCommand(main.Command):
    """Watch accelerator usage notifications or report GPU-hours."""

    help = 'Watch accelerator usage notifications or report GPU-hours.'

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest='usage_action',
                                        metavar='ACTION')
        actions.required = True

        watch_help = 'Print accelerator usage notifications as they arrive.'
        watch = actions.add_parser('watch', help=watch_help,
                                   description=watch_help)
        watch.add_argument(
            '--config-file', action='append', default=[],
            help='A Nova configuration file to read transport_url and '
                 '[sovereign_ai_notifications] from. Repeatable.')
        watch.add_argument(
            '--transport-url',
            help='Transport URL of the broker. Default: from the '
                 'configuration files.')
        watch.add_argument(
            '--topic', action='append',
            help='Topic to listen on. Default: [sovereign_ai_notifications] '
                 'topics.')
        watch.add_argument(
            '--exchange',
            help='Exchange to listen on. Default: [sovereign_ai_notifications]'
                 ' exchange, or "%s".' % NOVA_CONTROL_EXCHANGE)
        watch.add_argument(
            '--pool', default=DEFAULT_POOL,
            help='Listener pool, which is also the queue name, so the '
                 'watcher gets copies and takes no message from Ceilometer. '
                 'Default: %(default)s.')
        watch.add_argument(
            '--format', choices=('text', 'json'), default='text',
            help='text: one readable line per notification; json: one JSON '
                 'object per line, the input format of "usage report".')
        watch.add_argument(
            '--max-messages', type=int,
            help='Exit after this many notifications, 1 or more. '
                 'Default: run until interrupted.')
        watch.add_argument(
            '--connect-timeout', type=float, default=DEFAULT_CONNECT_TIMEOUT,
            help='Seconds to wait for a RabbitMQ broker to accept the '
                 'connection before the command fails. Default: '
                 '%(default)s.')
        watch.add_argument(
            '--keep-queue', action='store_true',
            help='Keep the pool queue on the broker after exit, so it '
                 'collects notifications until the next watch.')
        watch.set_defaults(usage_run=self.watch)

        report_help = ('Compute GPU-hours per project and model from '
                       'recorded usage notifications.')
        usage_report = actions.add_parser('report', help=report_help,
                                          description=report_help)
        usage_report.add_argument(
            'inputs', nargs='*', default=['-'], metavar='FILE',
            help='JSON lines files, as "usage watch --format json" writes '
                 'them; "-" (the default) reads standard input.')
        usage_report.add_argument(
            '--from', dest='window_start', required=True,
            help='Start of the report window, ISO 8601 (UTC unless a time '
                 'zone is given).')
        usage_report.add_argument(
            '--to', dest='window_end',
            help='End of the report window, ISO 8601. Default: now.')
        usage_report.add_argument(
            '--format', choices=('table', 'csv', 'json'), default='table',
            help='Output format. Default: %(default)s.')
        usage_report.set_defaults(usage_run=self.report)

    def run(self, args):
        return args.usage_run(args)

    # report

    def report(self, args):
        window_start = _window_time(args.window_start, '--from')
        if args.window_end:
            window_end = _window_time(args.window_end, '--to')
        else:
            window_end = timeutils.utcnow()
        if window_end <= window_start:
            raise main.CommandError(
                'invalid window: --to %s is not after --from %s'
                % (window_end.isoformat(), window_start.isoformat()))

        records = []
        for name in args.inputs:
            records.extend(_read_input(name))
        if not records:
            print('sovereign-ai: warning: no usage records found in %s'
                  % ', '.join(args.inputs), file=sys.stderr)
        rows = report.gpu_hours(records, window_start, window_end)
        _write_rows(rows, args.format, sys.stdout)
        return 0

    # watch

    def watch(self, args):
        if args.max_messages is not None and args.max_messages < 1:
            raise main.CommandError(
                'invalid --max-messages %d: expected 1 or more, or no '
                '--max-messages to run until interrupted' % args.max_messages)
        if not args.connect_timeout > 0:
            raise main.CommandError(
                'invalid --connect-timeout %s: expected a number of seconds '
                'above 0' % args.connect_timeout)

        # oslo.messaging imports eventlet, which prints a deprecation
        # warning, so only the command that needs it imports it.
        import oslo_messaging

        conf = cfg.ConfigOpts()
        notifications_conf.register_opts(conf)
        try:
            conf([], project='nova', default_config_files=args.config_file)
        except (cfg.Error, OSError) as error:
            raise main.CommandError('invalid configuration: %s' % error)
        options = conf[notifications_conf.GROUP.name]

        url = args.transport_url or options.transport_url
        try:
            transport = oslo_messaging.get_notification_transport(
                conf, url=url)
        except (oslo_messaging.InvalidTransportURL, ValueError) as error:
            raise main.CommandError('invalid transport URL %s: %s' % (
                _safe_url(url), _without_password(str(error), url)))
        except oslo_messaging.DriverLoadFailure:
            raise main.CommandError(
                'invalid transport URL %s: no oslo.messaging driver for its '
                'scheme. Use rabbit:// or another installed driver.'
                % _safe_url(url))
        try:
            _check_broker(conf, url, args.connect_timeout)
        except main.CommandError:
            transport.cleanup()
            raise

        exchange = (args.exchange or options.exchange
                    or NOVA_CONTROL_EXCHANGE)
        topics = args.topic or options.topics
        printer = _Printer(args.format, args.max_messages)
        listener = oslo_messaging.get_notification_listener(
            transport,
            [oslo_messaging.Target(topic=topic, exchange=exchange)
             for topic in topics],
            [printer], executor='threading', pool=args.pool)

        # The start declares the pool queue, so it runs inside the try: an
        # interrupt or error during the start still deletes the queue.
        started = False
        try:
            listener.start()
            started = True
            printer.done.wait()
        except KeyboardInterrupt:
            # An interrupt while watching is the usual way to stop, but one
            # during the start goes to main, which exits with 130.
            if not started:
                raise
        except oslo_messaging.ServerListenError as error:
            raise main.CommandError('cannot listen on %s: %s' % (
                _safe_url(url), _without_password(str(error), url)))
        finally:
            if started:
                listener.stop()
                listener.wait()
            if not args.keep_queue:
                _delete_queue(conf, url, args.pool)
            transport.cleanup()
        return 0


class _Printer:
    """Notification endpoint that prints usage notifications."""

    def __init__(self, output_format, max_messages):
        self.output_format = output_format
        self.max_messages = max_messages
        self.count = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        record = {'message_id': metadata.get('message_id'),
                  'publisher_id': publisher_id,
                  'event_type': event_type,
                  'timestamp': metadata.get('timestamp'),
                  'payload': payload}
        with self._lock:
            if self.done.is_set():
                return
            if self.output_format == 'json':
                print(json.dumps(record, sort_keys=True), flush=True)
            else:
                print(_text_line(record), flush=True)
            self.count += 1
            if self.max_messages and self.count >= self.max_messages:
                self.done.set()


def _text_line(record):
    payload = record['payload'] if isinstance(record['payload'], dict) else {}
    return ('%s %s instance=%s project=%s host=%s kind=%s model=%s count=%s '
            'message_id=%s' % (
                payload.get('event_time'), record['event_type'],
                payload.get('instance_id'), payload.get('project_id'),
                payload.get('host'), payload.get('accelerator_kind'),
                payload.get('model'), payload.get('count'),
                record['message_id']))


def _safe_url(url):
    """Return the scheme and hosts of a transport URL, without credentials."""
    if not url:
        return 'from the configuration files'
    scheme, _sep, rest = url.partition('://')
    netloc = rest.split('/', 1)[0]
    return '%s://%s' % (scheme, netloc.rpartition('@')[2])


def _without_password(text, url):
    try:
        password = urllib.parse.urlsplit(url or '').password
    except ValueError:
        return text.replace(url, _safe_url(url))
    if password:
        text = text.replace(password, '***')
    return text


def _rabbit_connections(conf, url, timeout):
    """Return a kombu connection per host of a RabbitMQ transport URL.

    The list is empty for other drivers and for a URL without hosts.
    """
    import kombu
    import oslo_messaging

    parsed = oslo_messaging.TransportURL.parse(conf, url)
    if parsed.transport not in ('rabbit', None) or not parsed.hosts:
        return []

    # NOTE: only the ssl and ssl_ca_file options of
    # [oslo_messaging_rabbit] apply here, not client certificates.
    ssl_options = False
    rabbit = getattr(conf, 'oslo_messaging_rabbit', None)
    if rabbit is not None and rabbit.ssl:
        ssl_options = True
        if rabbit.ssl_ca_file:
            ssl_options = {'ca_certs': rabbit.ssl_ca_file,
                           'cert_reqs': ssl.CERT_REQUIRED}

    return [kombu.Connection(
        hostname=host.hostname, port=host.port or 5672,
        userid=host.username or 'guest', password=host.password or 'guest',
        virtual_host=parsed.virtual_host or '/', ssl=ssl_options,
        connect_timeout=timeout) for host in parsed.hosts]


def _check_broker(conf, url, timeout):
    """Check that a RabbitMQ host of the URL accepts a login.

    oslo.messaging retries a refused login or an unreachable broker for
    ever, so the command checks the broker first, for at most ``timeout``
    seconds per host.

    :raises CommandError: when no host accepts the connection.
    """
    import amqp
    import oslo_messaging

    try:
        connections = _rabbit_connections(conf, url, timeout)
    except (oslo_messaging.InvalidTransportURL, ValueError) as error:
        raise main.CommandError('invalid transport URL %s: %s' % (
            _safe_url(url), _without_password(str(error), url)))

    errors = []
    for connection in connections:
        address = '%s:%s' % (connection.hostname, connection.port)
        try:
            # Retries a refused or timed out connection until the timeout,
            # as a broker may be starting, but not a refused login.
            connection.ensure_connection(
                timeout=timeout, interval_start=0.2, interval_step=0.2,
                interval_max=1, reraise_as_library_errors=False)
            return
        except amqp.exceptions.AccessRefused:
            raise main.CommandError(
                'login refused by the broker at %s for user %s. Check the '
                'user name and password of the transport URL.'
                % (address, connection.userid))
        except (OSError, amqp.exceptions.AMQPError) as error:
            errors.append('%s (%s)' % (address, error))
        finally:
            connection.release()

    if errors:
        raise main.CommandError(
            'cannot connect to the broker at %s within %s seconds. Check '
            'that RabbitMQ runs there, or raise --connect-timeout.'
            % (', '.join(errors), timeout))


def _delete_queue(conf, url, pool):
    """Delete the pool queue of a RabbitMQ transport, best effort."""
    try:
        for connection in _rabbit_connections(conf, url, 5):
            with connection:
                connection.channel().queue_delete(pool)
            return
    except Exception as error:
        print('sovereign-ai: warning: the queue %s could not be deleted: '
              '%s' % (pool, _without_password(str(error), url)),
              file=sys.stderr)


def _window_time(value, option):
    try:
        return report.parse_time(value)
    except ValueError:
        raise main.CommandError(
            'invalid %s %r: expected an ISO 8601 time such as '
            '2026-11-01T00:00:00Z' % (option, value))


def _read_input(name):
    source = '<stdin>' if name == '-' else name
    skipped = {}
    try:
        if name == '-':
            records = report.read_records(sys.stdin, source, skipped)
        else:
            with open(name) as lines:
                records = report.read_records(lines, source, skipped)
    except OSError as error:
        raise main.CommandError('cannot read %s: %s' % (name, error.strerror))
    except UnicodeDecodeError as error:
        raise main.CommandError('%s: not UTF-8 text: %s' % (name, error))
    except report.InvalidRecord as error:
        raise main.CommandError(str(error))

    for event_type, (line, count) in sorted(skipped.items(),
                                            key=lambda item: item[1][0]):
        print('sovereign-ai: warning: %s:%d: skipped %d record(s) with '
              'event_type %r, which is not a usage event. Expected %s.'
              % (source, line, count, event_type,
                 ', '.join(sorted(report.USAGE_EVENT_TYPES))),
              file=sys.stderr)
    return records


def _write_rows(rows, output_format, stream):
    if output_format == 'json':
        json.dump(rows, stream, indent=2, sort_keys=True)
        stream.write('\n')
        return

    if output_format == 'csv':
        writer = csv.DictWriter(stream, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return

    table = [REPORT_COLUMNS] + [
        tuple(_cell(row[column]) for column in REPORT_COLUMNS)
        for row in rows]
    widths = [max(len(line[i]) for line in table)
              for i in range(len(REPORT_COLUMNS))]
    for line in table:
        stream.write('  '.join(cell.ljust(width) for cell, width
                               in zip(line, widths)).rstrip() + '\n')


def _cell(value):
    if isinstance(value, float):
        return '%.2f' % value
    return '-' if value is None else str(value)
