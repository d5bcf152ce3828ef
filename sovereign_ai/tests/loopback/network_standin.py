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

"""A read-only stand-in for the Neutron API, for the loopback cloud only.

This is NOT Neutron. The loopback cloud boots servers with networks
``none``, yet Nova still calls the network API to look up ports on server
show, delete and the periodic network info refresh. This WSGI application
returns what an empty Neutron would return for those reads:

- ``GET /`` lists API version v2.0;
- ``GET /v2.0/<collection>`` returns an empty list, for example
  ``{"ports": []}`` (a hyphen in the collection name becomes an underscore
  in the key, as in Neutron);
- ``GET /v2.0/quotas/<project>`` returns unlimited (-1) quotas, so Nova's
  port quota check passes for servers without ports;
- ``GET /v2.0/<collection>/<id>`` returns 404 with a Neutron-style error.

It stores nothing and never validates tokens. Every write (POST, PUT,
PATCH, DELETE) returns HTTP 501 Not Implemented with a message that
explains this, and logs an error, so a test that needs real networking
fails loudly instead of passing on a fake.
"""

import json

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

API_VERSION = 'v2.0'

_READ_METHODS = ('GET', 'HEAD')

_QUOTA_RESOURCES = ('network', 'subnet', 'port', 'router', 'floatingip',
                    'security_group', 'security_group_rule')


def _respond(start_response, status, body):
    payload = json.dumps(body).encode('utf-8')
    start_response(status, [
        ('Content-Type', 'application/json'),
        ('Content-Length', str(len(payload))),
    ])
    return [payload]


def _versions(environ):
    host = environ.get('HTTP_HOST') or '%s:%s' % (
        environ.get('SERVER_NAME', '127.0.0.1'),
        environ.get('SERVER_PORT', '80'))
    url = '%s://%s/%s/' % (
        environ.get('wsgi.url_scheme', 'http'), host, API_VERSION)
    return {'versions': [{
        'id': API_VERSION, 'status': 'CURRENT',
        'links': [{'href': url, 'rel': 'self'}],
    }]}


def _not_found(resource, resource_id):
    kind = ''.join(part.capitalize() for part in
                   resource.rstrip('s').replace('-', '_').split('_'))
    return {'NeutronError': {
        'type': '%sNotFound' % kind,
        'message': '%s %s could not be found: this network API stand-in '
                   'stores no resources.' % (kind, resource_id),
        'detail': '',
    }}


def application(environ, start_response):
    """Serve the read-only subset of the Neutron API described above."""
    method = environ.get('REQUEST_METHOD', 'GET')
    path = environ.get('PATH_INFO', '/')
    parts = [part for part in path.split('/') if part]

    if method not in _READ_METHODS:
        LOG.error('Rejected %s %s: the network API stand-in of the loopback '
                  'cloud is read-only.', method, path)
        return _respond(start_response, '501 Not Implemented', {
            'NeutronError': {
                'type': 'NotImplemented',
                'message': '%s %s is not implemented: this is the read-only '
                           'network API stand-in of the loopback cloud, not '
                           'Neutron. Boot servers with networks "none".'
                           % (method, path),
                'detail': '',
            }})

    if not parts or parts == [API_VERSION]:
        return _respond(start_response, '200 OK', _versions(environ))

    if parts[0] != API_VERSION:
        return _respond(start_response, '404 Not Found', {
            'NeutronError': {'type': 'HTTPNotFound',
                             'message': 'Unknown path %s.' % path,
                             'detail': ''}})

    resource = parts[1]
    if resource.endswith('.json'):
        resource = resource[:-len('.json')]

    if len(parts) == 2:
        LOG.debug('Returned an empty %s list.', resource)
        return _respond(start_response, '200 OK',
                        {resource.replace('-', '_'): []})

    if resource == 'quotas' and len(parts) == 3:
        return _respond(start_response, '200 OK', {
            'quota': {name: -1 for name in _QUOTA_RESOURCES}})

    return _respond(start_response, '404 Not Found',
                    _not_found(resource, parts[2]))
