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

"""WSGI application factories for gunicorn in the loopback cloud.

The upstream WSGI entry points parse ``sys.argv`` as their own command
line. Under gunicorn it contains gunicorn's options, which the services
reject before exiting. Each factory here resets ``sys.argv`` to the bare
program name and then loads the upstream application; the configuration
files come from the ``OS_*_CONFIG_*`` environment variables that the
loopback cloud sets for each process. Run, for example::

    OS_KEYSTONE_CONFIG_FILES=/path/keystone.conf \\
        gunicorn 'sovereign_ai.tests.loopback.wsgi:keystone()'
"""

import sys


def _reset_argv(prog):
    sys.argv = [prog]


def keystone():
    """Return the Keystone public API application."""
    _reset_argv('keystone-wsgi-public')
    from keystone.server import wsgi as keystone_wsgi
    return keystone_wsgi.initialize_public_application()


def placement():
    """Return the Placement API application."""
    _reset_argv('placement-api')
    from placement import wsgi as placement_wsgi
    return placement_wsgi.init_application()


def glance():
    """Return the Glance image API application."""
    _reset_argv('glance-api')
    from glance.common import wsgi_app as glance_wsgi
    return glance_wsgi.init_app()


def nova_api():
    """Return the Nova compute API application."""
    _reset_argv('nova-api')
    from nova.wsgi import osapi_compute
    return osapi_compute.application


def network_standin():
    """Return the read-only stand-in for the Neutron API."""
    _reset_argv('sovereign-ai-network-standin')
    from sovereign_ai.tests.loopback import network_standin as standin
    return standin.application
