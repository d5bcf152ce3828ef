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

import json

import testtools

from sovereign_ai.tests.loopback import network_standin


class TestNetworkStandin(testtools.TestCase):

    def _call(self, method, path):
        captured = {}

        def start_response(status, headers):
            captured['status'] = status

        environ = {'REQUEST_METHOD': method, 'PATH_INFO': path,
                   'HTTP_HOST': '127.0.0.1:18004', 'wsgi.url_scheme': 'http'}
        body = b''.join(network_standin.application(environ, start_response))
        return captured['status'], json.loads(body)

    def test_versions(self):
        status, body = self._call('GET', '/')
        self.assertEqual('200 OK', status)
        self.assertEqual('v2.0', body['versions'][0]['id'])
        self.assertEqual('http://127.0.0.1:18004/v2.0/',
                         body['versions'][0]['links'][0]['href'])

    def test_list_empty(self):
        status, body = self._call('GET', '/v2.0/ports')
        self.assertEqual('200 OK', status)
        self.assertEqual({'ports': []}, body)

    def test_list_hyphenated(self):
        status, body = self._call('GET', '/v2.0/security-groups.json')
        self.assertEqual({'security_groups': []}, body)

    def test_show_not_found(self):
        status, body = self._call('GET', '/v2.0/ports/abc')
        self.assertEqual('404 Not Found', status)
        self.assertEqual('PortNotFound', body['NeutronError']['type'])

    def test_quota_unlimited(self):
        status, body = self._call('GET', '/v2.0/quotas/project-1')
        self.assertEqual('200 OK', status)
        self.assertEqual(-1, body['quota']['port'])

    def test_writes_rejected(self):
        for method in ('POST', 'PUT', 'PATCH', 'DELETE'):
            status, body = self._call(method, '/v2.0/ports')
            self.assertEqual('501 Not Implemented', status, method)
            self.assertIn('read-only', body['NeutronError']['message'])
