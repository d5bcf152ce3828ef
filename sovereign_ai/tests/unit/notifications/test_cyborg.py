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

"""GPU counts of Cyborg device profiles."""

import http.server
import json
import os
import socket
import threading

import fixtures
from oslo_config import cfg

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import cyborg
from sovereign_ai.notifications import sender
from sovereign_ai.notifications import spool
from sovereign_ai.tests import base
from sovereign_ai.tests.unit.notifications import samples
from sovereign_ai.tests.unit.notifications import test_usage

CYBORG = notifications_conf.CYBORG_GROUP.name

PROFILES = {
    'gpu-a100-2': {'name': 'gpu-a100-2', 'groups': [
        {'resources:PGPU': '1', 'trait:CUSTOM_A100': 'required'},
        {'resources:PGPU': '1', 'trait:CUSTOM_A100': 'required'}]},
    'fpga-1': {'name': 'fpga-1', 'groups': [{'resources:FPGA': '1'}]},
}


class _CyborgHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in for the Cyborg API, which cannot run in unit tests."""

    requests = []

    def do_GET(self):
        type(self).requests.append(self.path)
        name = self.path.partition('name=')[2]
        body = json.dumps({'device_profiles': [
            profile for key, profile in PROFILES.items() if key == name]})
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


class TestGpuCount(base.TestCase):

    def test_pgpu_groups_summed(self):
        self.assertEqual(2, cyborg.gpu_count(PROFILES['gpu-a100-2'], []))

    def test_fpga_not_gpu(self):
        self.assertEqual(0, cyborg.gpu_count(PROFILES['fpga-1'], []))


class _CyborgTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        self.conf([])
        notifications_conf.register_opts(self.conf)

    def _serve(self):
        server = http.server.HTTPServer(('127.0.0.1', 0), _CyborgHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        _CyborgHandler.requests = []
        return server.server_address[1]

    def _resolver(self, port):
        self.conf.set_override('auth_type', 'none', group=CYBORG)
        self.conf.set_override('endpoint_override',
                               'http://127.0.0.1:%d' % port, group=CYBORG)
        return cyborg.DeviceProfileResolver(self.conf, 600, [])


class TestResolver(_CyborgTestCase):

    def test_count_cached(self):
        resolver = self._resolver(self._serve())
        self.assertEqual(2, resolver.count('gpu-a100-2'))
        self.assertEqual(2, resolver.count('gpu-a100-2'))
        self.assertEqual(1, len(_CyborgHandler.requests))
        self.assertIn('/v2/device_profiles?name=gpu-a100-2',
                      _CyborgHandler.requests[0])

    def test_profile_not_found(self):
        resolver = self._resolver(self._serve())
        self.assertRaises(cyborg.DeviceProfileNotFound,
                          resolver.count, 'missing')

    def test_unreachable(self):
        resolver = self._resolver(_closed_port())
        self.assertRaises(cyborg.CyborgUnavailable,
                          resolver.count, 'gpu-a100-2')
        # The failure is cached, so the next lookup does not wait again.
        self.assertRaises(cyborg.CyborgUnavailable,
                          resolver.count, 'gpu-a100-2')

    def test_not_configured(self):
        resolver = cyborg.DeviceProfileResolver(self.conf, 600, [])
        self.assertRaises(cyborg.CyborgNotConfigured,
                          resolver.count, 'gpu-a100-2')


class _RecordingTransport:
    """Stands in for the broker: stores what the sender publishes."""

    def __init__(self):
        self.messages = []

    def _send_notification(self, target, ctxt, message, version, retry):
        self.messages.append(message)

    def cleanup(self):
        pass


class TestSenderCounts(_CyborgTestCase):

    def _sender(self, resolver, max_wait):
        self.conf.set_override('cyborg_max_wait', max_wait,
                               group=notifications_conf.GROUP.name)
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'spool.sqlite')
        usage_spool = spool.Spool(path, 100)
        self.addCleanup(usage_spool.close)
        transport = _RecordingTransport()
        usage_sender = sender.Sender(
            usage_spool, lambda: transport,
            self.conf[notifications_conf.GROUP.name], 'sovereign-ai.test',
            resolver)
        extractor = test_usage.make_extractor()
        message = samples.as_message(
            samples.own_sample(),
            extra_specs={'accel:device_profile': 'gpu-a100-2'})
        usage_spool.append(extractor.records(message, []))
        return usage_sender, transport

    def test_count_filled_before_send(self):
        usage_sender, transport = self._sender(
            self._resolver(self._serve()), max_wait=3600)

        usage_sender._pass()

        payload = transport.messages[0]['payload']
        self.assertEqual(2, payload['count'])
        self.assertTrue(payload['count_known'])
        self.assertEqual('sovereign-ai.test',
                         transport.messages[0]['publisher_id'])

    def test_waits_for_cyborg(self):
        resolver = self._resolver(_closed_port())
        usage_sender, transport = self._sender(resolver, max_wait=3600)

        usage_sender._pass()

        self.assertEqual([], transport.messages)
        self.assertEqual(1, usage_sender.spool.size())

    def test_waiting_records_skipped(self):
        resolver = self._resolver(_closed_port())
        usage_sender, transport = self._sender(resolver, max_wait=3600)
        self.conf.set_override('send_batch_size', 1,
                               group=notifications_conf.GROUP.name)
        extractor = test_usage.make_extractor()
        for index in range(3):
            message = samples.as_message(
                samples.own_sample(), instance_id='waits',
                extra_specs={'accel:device_profile': 'gpu-a100-2'})
            usage_sender.spool.append(extractor.records(message, []))
        usage_sender.spool.append(extractor.records(samples.as_message(
            samples.own_sample(), instance_id='ready'), []))

        usage_sender._pass()

        self.assertEqual(['ready'], [message['payload']['instance_id']
                                     for message in transport.messages])
        self.assertEqual(4, usage_sender.spool.size())

    def test_sent_flagged_after_max_wait(self):
        resolver = self._resolver(_closed_port())
        usage_sender, transport = self._sender(resolver, max_wait=0)

        usage_sender._pass()

        payload = transport.messages[0]['payload']
        self.assertIsNone(payload['count'])
        self.assertFalse(payload['count_known'])
        self.assertTrue(payload['count_lookup_failed'])
        self.assertEqual(0, usage_sender.spool.size())


def _closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
