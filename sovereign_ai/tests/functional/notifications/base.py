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

"""RabbitMQ, a cuttable TCP proxy and a listener for the notifier tests."""

import os
import select
import socket
import threading
import time
import uuid

import fixtures
import kombu
from oslo_config import cfg
import oslo_messaging
import testtools

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import driver
from sovereign_ai.tests.unit.notifications import samples

DEFAULT_RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'


def rabbit_url():
    return os.environ.get('SOVEREIGN_AI_RABBIT_URL', DEFAULT_RABBIT_URL)


def rabbit_address():
    """Return the (host, port) of the test broker."""
    url = oslo_messaging.TransportURL.parse(cfg.CONF, rabbit_url())
    host = url.hosts[0]
    return host.hostname, host.port or 5672


def with_address(url, host, port):
    """Return ``url`` with its first host replaced."""
    parsed = oslo_messaging.TransportURL.parse(cfg.CONF, url)
    first = parsed.hosts[0]
    return 'rabbit://%s:%s@%s:%d/%s' % (
        first.username, first.password, host, port,
        parsed.virtual_host or '')


class TcpProxy:
    """A TCP proxy on 127.0.0.1 that the test can cut and restore."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.port = None
        self._server = None
        self._connections = []
        self._lock = threading.Lock()
        self._running = False

    def start(self):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(('127.0.0.1', self.port or 0))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        self._running = True
        threading.Thread(target=self._accept, args=(server,),
                         daemon=True).start()

    def _accept(self, server):
        while True:
            try:
                client, _address = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self._running:
                    client.close()
                    upstream.close()
                    return
                self._connections.extend([client, upstream])
            threading.Thread(target=self._pump, args=(client, upstream),
                             daemon=True).start()

    def _pump(self, client, upstream):
        sockets = [client, upstream]
        try:
            while True:
                readable, _w, _x = select.select(sockets, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    other = upstream if sock is client else client
                    other.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self):
        """Close the listening socket and every open connection."""
        with self._lock:
            self._running = False
            # shutdown() wakes the thread blocked in accept(); close()
            # alone leaves the socket listening until accept() returns.
            try:
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            for sock in self._connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._connections = []

    def restore(self):
        self.start()

    def stop(self):
        if self._running:
            self.cut()


class Collector:
    """A notification endpoint that stores what it receives."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.messages.append({
                'message_id': metadata['message_id'],
                'publisher_id': publisher_id,
                'event_type': event_type,
                'payload': payload,
            })

    def ids(self):
        with self._lock:
            return [message['message_id'] for message in self.messages]

    def instance_ids(self):
        with self._lock:
            return [message['payload']['instance_id']
                    for message in self.messages]

    def wait_for_count(self, count, timeout=30):
        """Wait until ``count`` notifications arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.ids()) >= count:
                return True
            time.sleep(0.1)
        return False

    def wait_for_instances(self, instance_ids, timeout):
        """Wait until a notification of every instance arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(instance_ids) <= set(self.instance_ids()):
                return True
            time.sleep(0.2)
        return False


class NotifierTestCase(testtools.TestCase):
    """Base class: a broker, a unique exchange and topic, a spool."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        address = rabbit_address()
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError as error:
            self.skipTest('RabbitMQ is not reachable at %s:%d (%s). Start '
                          'it or set SOVEREIGN_AI_RABBIT_URL.'
                          % (address[0], address[1], error))

        self.run_id = uuid.uuid4().hex[:12]
        self.exchange = 'sai-test-%s' % self.run_id
        self.usage_topic = 'sai-usage-%s' % self.run_id
        self.versioned_topic = 'sai-versioned-%s' % self.run_id
        self.tempdir = self.useFixture(fixtures.TempDir()).path
        self.spool_path = os.path.join(self.tempdir, 'spool.sqlite')
        self.addCleanup(driver.stop_senders)
        self.addCleanup(self._delete_broker_objects)

    def make_conf(self, sender_url=None, **overrides):
        """Return a configuration for the driver in this test."""
        conf = cfg.ConfigOpts()
        conf([], project='sovereign-ai-test')
        notifications_conf.register_opts(conf)
        group = notifications_conf.GROUP.name
        conf.set_override('topics', [self.usage_topic], group=group)
        conf.set_override('exchange', self.exchange, group=group)
        conf.set_override('source_topics', [self.versioned_topic],
                          group=group)
        conf.set_override('spool_path', self.spool_path, group=group)
        conf.set_override('retry_interval', 0.05, group=group)
        conf.set_override('retry_max_interval', 0.5, group=group)
        conf.set_override('transport_url', sender_url or rabbit_url(),
                          group=group)
        for name, value in overrides.items():
            conf.set_override(name, value, group=group)

        oslo_messaging.get_notification_transport(conf, url='fake:/')
        from nova.conf import pci as nova_pci_conf
        nova_pci_conf.register_opts(conf)
        conf.set_override('alias', samples.PCI_ALIASES, group='pci')
        return conf

    def write_child_config(self, sender_url):
        """Write the configuration file of notifier_child."""
        path = os.path.join(self.tempdir, 'child.conf')
        with open(path, 'w') as config:
            config.write(
                '[sovereign_ai_notifications]\n'
                'topics = %s\n'
                'exchange = %s\n'
                'spool_path = %s\n'
                'transport_url = %s\n'
                'source_topics = %s\n'
                'retry_interval = 0.05\n'
                'retry_max_interval = 0.5\n'
                '[pci]\n' % (self.usage_topic, self.exchange,
                             self.spool_path, sender_url,
                             self.versioned_topic))
            for alias in samples.PCI_ALIASES:
                config.write('alias = %s\n' % alias)
        return path

    def make_notifier(self, conf, topics=None):
        """Return a Notifier whose only driver is accelerator_usage."""
        transport = oslo_messaging.get_notification_transport(
            conf, url='fake:/')
        self.addCleanup(transport.cleanup)
        return oslo_messaging.Notifier(
            transport, publisher_id='nova-compute:gpu-node-07',
            driver='accelerator_usage',
            topics=topics or [self.versioned_topic])

    def start_listener(self):
        """Listen on the usage topic; return the collector."""
        conf = cfg.ConfigOpts()
        transport = oslo_messaging.get_notification_transport(
            conf, url=rabbit_url())
        collector = Collector()
        listener = oslo_messaging.get_notification_listener(
            transport,
            [oslo_messaging.Target(topic=self.usage_topic,
                                   exchange=self.exchange)],
            [collector], executor='threading')
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            transport.cleanup()

        self.addCleanup(stop)
        return collector

    def _delete_broker_objects(self):
        url = rabbit_url().replace('rabbit://', 'amqp://', 1)
        with kombu.Connection(url, connect_timeout=5) as connection:
            channel = connection.channel()
            # A notification listener declares one queue per priority.
            for priority in _PRIORITIES:
                channel.queue_delete('%s.%s' % (self.usage_topic, priority))
            channel.exchange_delete(self.exchange)


_PRIORITIES = ('audit', 'debug', 'info', 'warn', 'error', 'critical',
               'sample')


def instance_ids(count):
    """Return the instance ids of the first ``count`` gpu_message()s."""
    return [str(uuid.UUID(int=index)) for index in range(count)]


def delivery_counts(collector, expected_instance_ids):
    """Count sent, received, duplicate and missing usage notifications."""
    received = collector.ids()
    return {
        'sent': len(expected_instance_ids),
        'received': len(received),
        'duplicates': len(received) - len(set(received)),
        'missing': len(set(expected_instance_ids)
                       - set(collector.instance_ids())),
    }


def gpu_message(index, instance_id=None, event_type='instance.create.end'):
    """Return a Nova-shaped notification of a GPU instance."""
    return samples.as_message(
        samples.own_sample(), event_type=event_type,
        instance_id=instance_id or str(uuid.UUID(int=index)),
        message_id=str(uuid.UUID(int=(1 << 64) + index)))
