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

"""Bring the loopback cloud up and down.

``up`` starts, on 127.0.0.1 only: Keystone, Placement, Glance, the network
API stand-in (all under gunicorn), nova-api (gunicorn), nova-conductor,
nova-scheduler and one nova-compute per emulated GPU host. It uses the
MariaDB and RabbitMQ that listen on their usual ports, in databases named
``sovereign_ai_loopback_*`` and the vhost ``sovereign_ai_loopback``, and
starts private instances from the Debian packages when none listens.
Every file the cloud writes lies under the state directory.

This module runs inside the venv of the cloud (see ``tools/loopback-cloud``),
which has the services and this package installed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from sovereign_ai.tests.loopback import config
from sovereign_ai.tests.loopback import process

# Services in start order; down stops them in reverse.
WSGI_SERVICES = ('keystone', 'placement', 'glance', 'network-standin',
                 'nova-api')
NOVA_SERVICES = ('nova-conductor', 'nova-scheduler')

TINY_IMAGE_NAME = 'loopback-tiny'


class CloudError(Exception):
    """The loopback cloud could not reach the requested state."""


def _log(message, *args):
    print('loopback-cloud: ' + (message % args if args else message),
          flush=True)


def _run(settings, name, argv, env=None):
    """Run a one-shot command, appending its output to the setup log."""
    log_path = process.log_file(settings.state_dir, 'setup')
    with open(log_path, 'ab') as log:
        log.write(('\n$ %s\n' % ' '.join(argv)).encode('utf-8'))
        log.flush()
        full_env = dict(os.environ)
        full_env.update(env or {})
        result = subprocess.run(argv, stdout=log, stderr=log, env=full_env,
                                cwd=settings.state_dir)
    if result.returncode != 0:
        raise CloudError('%s failed with exit status %d; see %s.'
                         % (name, result.returncode, log_path))


# --- plugins -------------------------------------------------------------

def detect_plugins():
    """Return which sovereign-ai plugins this tree provides.

    A plugin counts when its module imports and defines the expected name,
    after Nova's objects are registered as in a Nova service. A module
    that fails to import for any reason is left out, with the error.
    """
    from nova import objects
    objects.register_all()

    def importable(module, attribute):
        try:
            mod = __import__(module, fromlist=['_'])
        except Exception as exc:
            _log('not enabling %s.%s: import failed: %s', module, attribute,
                 exc)
            return False
        return hasattr(mod, attribute)

    return config.Plugins(
        gpu_topology_filter=importable(
            'sovereign_ai.nova.filters.gpu_topology', 'GpuTopologyFilter'),
        gpu_fragmentation_weigher=importable(
            'sovereign_ai.nova.weighers', 'GpuFragmentationWeigher'),
        extra_spec_validation=importable('sovereign_ai.nova.extra_specs',
                                         'register'),
        accelerator_usage_notifier=importable(
            'sovereign_ai.notifications.driver', 'AcceleratorUsageDriver'))


def select_plugins(found, requested):
    """Return the plugins to enable: ``found`` masked by ``requested``.

    ``requested`` is ``auto`` (every plugin found), ``none``, or a
    comma-separated list of plugin names, such as
    ``gpu_topology_filter,extra_spec_validation``, to run Nova without
    the others.

    :raises ValueError: on an unknown name.
    """
    requested = requested.strip()
    if requested == 'auto':
        return found

    names = set() if requested == 'none' else {
        name.strip() for name in requested.split(',') if name.strip()}
    unknown = names - set(config.Plugins._fields)
    if unknown:
        raise ValueError(
            'Invalid LOOPBACK_PLUGINS value %r: unknown plugin %s; expected '
            'auto, none or names among %s.'
            % (requested, ', '.join(sorted(unknown)),
               ', '.join(config.Plugins._fields)))
    return config.Plugins(**{
        name: available and name in names
        for name, available in found._asdict().items()})


# --- backing services ------------------------------------------------------

def _ensure_mariadb(settings):
    if process.port_open(settings.mysql_port):
        return

    mysqld = shutil.which('mariadbd') or shutil.which('mysqld') or (
        '/usr/sbin/mariadbd' if os.path.exists('/usr/sbin/mariadbd')
        else None)
    if mysqld is None:
        raise CloudError(
            'No MariaDB answers on 127.0.0.1:%d and mariadbd is not '
            'installed; install the mariadb-server Debian package.'
            % settings.mysql_port)

    # The private server keeps its data under the state directory and
    # stops with the cloud. LOOPBACK_MYSQL_PORT=<unused port> forces it.
    settings.mysql_port = settings.port('mariadb')
    datadir = settings.path('mariadb', 'data')
    if not os.path.isdir(datadir):
        os.makedirs(datadir)
        _run(settings, 'mariadb-install-db', [
            shutil.which('mariadb-install-db') or 'mysql_install_db',
            '--no-defaults', '--datadir=%s' % datadir,
            '--auth-root-authentication-method=normal', '--user=root'])
    process.start(settings.state_dir, 'mariadb', [
        mysqld, '--no-defaults', '--datadir=%s' % datadir,
        '--bind-address=127.0.0.1', '--port=%d' % settings.mysql_port,
        '--socket=%s' % settings.path('mariadb', 'mysqld.sock'),
        '--user=root', '--skip-name-resolve'])
    _wait_for_port(settings, 'mariadb', settings.mysql_port)


def _ensure_rabbitmq(settings):
    if process.port_open(settings.rabbit_port):
        return

    # The Debian wrapper in /usr/sbin switches to the rabbitmq user, which
    # cannot write the state directory, so run the script behind it.
    server = _rabbitmq_bin('rabbitmq-server')
    if server is None:
        raise CloudError(
            'No RabbitMQ answers on 127.0.0.1:%d and rabbitmq-server is '
            'not installed; install the rabbitmq-server Debian package.'
            % settings.rabbit_port)

    # LOOPBACK_RABBIT_PORT=<unused port> forces the private node.
    settings.rabbit_port = settings.port('rabbitmq')
    base = settings.path('rabbitmq')
    os.makedirs(base, exist_ok=True)

    # The system's rabbitmq.conf and rabbitmq-env.conf name the shared
    # node and its port, so the private node gets files of its own.
    _write(os.path.join(base, 'rabbitmq.conf'),
           'listeners.tcp.local = 127.0.0.1:%d\n' % settings.rabbit_port)
    _write(os.path.join(base, 'rabbitmq-env.conf'), '')
    env = {
        'RABBITMQ_CONFIG_FILE': os.path.join(base, 'rabbitmq.conf'),
        'RABBITMQ_CONF_ENV_FILE': os.path.join(base, 'rabbitmq-env.conf'),
        'RABBITMQ_NODENAME': 'loopback@localhost',
        'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
        'RABBITMQ_NODE_PORT': str(settings.rabbit_port),
        'RABBITMQ_DIST_PORT': str(settings.rabbit_port + 20000),
        'RABBITMQ_MNESIA_BASE': os.path.join(base, 'mnesia'),
        'RABBITMQ_LOG_BASE': os.path.join(base, 'log'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(base, 'plugins'),
    }
    process.start(settings.state_dir, 'rabbitmq', [server], env=env)
    _wait_for_port(settings, 'rabbitmq', settings.rabbit_port)


def _rabbitmq_bin(name):
    path = os.path.join('/usr/lib/rabbitmq/bin', name)
    if os.path.exists(path):
        return path
    return shutil.which(name)


def _rabbitmqctl(settings, *args):
    if settings.rabbit_port == settings.port('rabbitmq'):
        # The private node runs as this user, with this user's cookie.
        return [_rabbitmq_bin('rabbitmqctl'), '-n',
                'loopback@localhost'] + list(args)
    return ['rabbitmqctl'] + list(args)


def _wait_for_port(settings, name, port, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.port_open(port):
            return
        time.sleep(0.5)
    raise CloudError('%s did not listen on 127.0.0.1:%d within %d s; see %s.'
                     % (name, port, timeout,
                        process.log_file(settings.state_dir, name)))


def _mysql(settings, sql):
    _run(settings, 'mysql', [
        'mysql', '-h', '127.0.0.1', '-P', str(settings.mysql_port), '-u',
        'root', '-e', sql])


def _reset_backends(settings):
    statements = []
    for name in config.DATABASES:
        db = config.DB_PREFIX + name
        statements.append('DROP DATABASE IF EXISTS %s;' % db)
        statements.append('CREATE DATABASE %s CHARACTER SET utf8mb4;' % db)
    _mysql(settings, ' '.join(statements))

    subprocess.run(_rabbitmqctl(settings, 'delete_vhost',
                                config.RABBIT_VHOST),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _run(settings, 'rabbitmqctl add_vhost',
         _rabbitmqctl(settings, 'add_vhost', config.RABBIT_VHOST))
    _run(settings, 'rabbitmqctl set_permissions',
         _rabbitmqctl(settings, 'set_permissions', '-p', config.RABBIT_VHOST,
                      'guest', '.*', '.*', '.*'))


def _drop_backends(settings):
    statements = ['DROP DATABASE IF EXISTS %s%s;' % (config.DB_PREFIX, name)
                  for name in config.DATABASES]
    if process.port_open(settings.mysql_port):
        _mysql(settings, ' '.join(statements))
    if process.port_open(settings.rabbit_port):
        subprocess.run(_rabbitmqctl(settings, 'delete_vhost',
                                    config.RABBIT_VHOST),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- configuration files -------------------------------------------------

def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def write_configs(settings):
    etc = settings.path('etc')
    _write(os.path.join(etc, 'keystone', 'keystone.conf'),
           config.render_keystone(settings))
    _write(os.path.join(etc, 'placement', 'placement.conf'),
           config.render_placement(settings))
    _write(os.path.join(etc, 'glance', 'glance-api.conf'),
           config.render_glance(settings))
    shutil.copy(os.path.join(settings.venv_dir, 'etc', 'glance',
                             'glance-api-paste.ini'),
                os.path.join(etc, 'glance', 'glance-api-paste.ini'))
    _write(os.path.join(etc, 'nova', 'nova.conf'),
           config.render_nova(settings))
    shutil.copy(os.path.join(settings.venv_dir, 'etc', 'nova',
                             'api-paste.ini'),
                os.path.join(etc, 'nova', 'api-paste.ini'))
    _write(os.path.join(etc, 'nova', 'nova-conductor.conf'),
           config.render_conductor(settings))
    for host in settings.hosts:
        _write(os.path.join(etc, 'nova', 'nova-compute-%s.conf' % host),
               config.render_compute(settings, host))
    for subdir in (('glance', 'images'), ('glance', 'staging'),
                   ('glance', 'tasks'), ('nova', 'lock'), ('glance', 'lock')):
        os.makedirs(settings.path(*subdir), exist_ok=True)


def _nova_conf(settings):
    return settings.path('etc', 'nova', 'nova.conf')


def _glance_conf(settings):
    return settings.path('etc', 'glance', 'glance-api.conf')


# --- services ------------------------------------------------------------

def _gunicorn(settings, name, factory, env):
    argv = [
        settings.bin('gunicorn'),
        '--bind', '127.0.0.1:%d' % settings.port(name),
        '--workers', '1', '--threads', '4', '--worker-class', 'gthread',
        '--timeout', '120', '--graceful-timeout', '5',
        '--name', 'loopback-%s' % name, '--no-control-socket',
        'sovereign_ai.tests.loopback.wsgi:%s()' % factory,
    ]
    process.start(settings.state_dir, name, argv, env=env)


def _start_keystone(settings):
    conf = settings.path('etc', 'keystone', 'keystone.conf')
    manage = [settings.bin('keystone-manage'), '--config-file', conf]
    _run(settings, 'keystone-manage db_sync', manage + ['db_sync'])
    for command in ('fernet_setup', 'credential_setup'):
        _run(settings, 'keystone-manage %s' % command, manage + [
            command, '--keystone-user', str(os.getuid()),
            '--keystone-group', str(os.getgid())])
    _run(settings, 'keystone-manage bootstrap', manage + [
        'bootstrap', '--bootstrap-password', config.ADMIN_PASSWORD,
        '--bootstrap-admin-url', settings.keystone_url,
        '--bootstrap-internal-url', settings.keystone_url,
        '--bootstrap-public-url', settings.keystone_url,
        '--bootstrap-region-id', config.REGION])
    _gunicorn(settings, 'keystone', 'keystone',
              {'OS_KEYSTONE_CONFIG_FILES': conf})


def _start_placement(settings):
    conf_dir = settings.path('etc', 'placement')
    _run(settings, 'placement-manage db sync', [
        settings.bin('placement-manage'), '--config-file',
        os.path.join(conf_dir, 'placement.conf'), 'db', 'sync'])
    _gunicorn(settings, 'placement', 'placement',
              {'OS_PLACEMENT_CONFIG_DIR': conf_dir})


def _start_glance(settings):
    _run(settings, 'glance-manage db_sync', [
        settings.bin('glance-manage'), '--config-file', _glance_conf(settings),
        'db_sync'])
    _gunicorn(settings, 'glance', 'glance',
              {'OS_GLANCE_CONFIG_DIR': settings.path('etc', 'glance')})


def _start_nova_control(settings):
    manage = [settings.bin('nova-manage'), '--config-file',
              _nova_conf(settings)]
    _run(settings, 'nova-manage api_db sync', manage + ['api_db', 'sync'])
    _run(settings, 'nova-manage cell_v2 map_cell0', manage + [
        'cell_v2', 'map_cell0', '--database_connection',
        settings.db_url('nova_cell0')])
    _run(settings, 'nova-manage cell_v2 create_cell', manage + [
        'cell_v2', 'create_cell', '--name', 'cell1'])
    _run(settings, 'nova-manage db sync', manage + ['db', 'sync'])

    _gunicorn(settings, 'nova-api', 'nova_api', {
        'OS_NOVA_CONFIG_DIR': settings.path('etc', 'nova'),
        'OS_NOVA_CONFIG_FILES': 'api-paste.ini;nova.conf'})
    process.start(settings.state_dir, 'nova-conductor', [
        settings.bin('nova-conductor'), '--config-file', _nova_conf(settings),
        '--config-file', settings.path('etc', 'nova', 'nova-conductor.conf')])
    process.start(settings.state_dir, 'nova-scheduler', [
        settings.bin('nova-scheduler'), '--config-file', _nova_conf(settings)])


def compute_service_name(host):
    return 'nova-compute-%s' % host


def _start_computes(settings):
    for host in settings.hosts:
        os.makedirs(settings.path('nova', host, 'instances'), exist_ok=True)
        process.start(settings.state_dir, compute_service_name(host), [
            settings.bin('python'), '-m',
            'sovereign_ai.tests.loopback.compute', '--config-file',
            _nova_conf(settings), '--config-file',
            settings.path('etc', 'nova', 'nova-compute-%s.conf' % host)])


# --- REST calls ----------------------------------------------------------

def _request(method, url, token=None, body=None, headers=None,
             data=None):
    all_headers = {'Accept': 'application/json'}
    if body is not None:
        data = json.dumps(body).encode('utf-8')
        all_headers['Content-Type'] = 'application/json'
    if token:
        all_headers['X-Auth-Token'] = token
    all_headers.update(headers or {})

    request = urllib.request.Request(url, data=data, method=method,
                                     headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
            result = json.loads(payload) if payload else {}
            return result, response.headers
    except urllib.error.HTTPError as exc:
        raise CloudError('%s %s failed: HTTP %d %s'
                         % (method, url, exc.code,
                            exc.read().decode('utf-8', 'replace')[:500]))


def admin_token(settings):
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'domain': {'id': 'default'},
            'password': config.ADMIN_PASSWORD}}},
        'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}},
    }}
    _, headers = _request('POST', settings.keystone_url + '/auth/tokens',
                          body=body)
    return headers['X-Subject-Token']


def _register_services(settings, token):
    ks = settings.keystone_url
    project, _ = _request('POST', ks + '/projects', token, {'project': {
        'name': 'service', 'domain_id': 'default'}})
    project_id = project['project']['id']

    roles, _ = _request('GET', ks + '/roles', token)
    role_ids = {role['name']: role['id'] for role in roles['roles']}

    for username in ('nova', 'placement', 'glance'):
        user, _ = _request('POST', ks + '/users', token, {'user': {
            'name': username, 'domain_id': 'default',
            'password': config.SERVICE_PASSWORD}})
        for role in ('admin', 'service'):
            _request('PUT', '%s/projects/%s/users/%s/roles/%s' % (
                ks, project_id, user['user']['id'], role_ids[role]), token)

    catalog = (
        ('placement', 'placement', settings.url('placement')),
        ('glance', 'image', settings.url('glance')),
        ('nova', 'compute', settings.url('nova-api', '/v2.1')),
        ('network-standin', 'network', settings.url('network-standin')),
    )
    for name, service_type, url in catalog:
        service, _ = _request('POST', ks + '/services', token, {'service': {
            'name': name, 'type': service_type, 'enabled': True}})
        for interface in ('public', 'internal', 'admin'):
            _request('POST', ks + '/endpoints', token, {'endpoint': {
                'service_id': service['service']['id'],
                'interface': interface, 'url': url,
                'region_id': config.REGION}})


def _upload_image(settings, token):
    images = settings.url('glance', '/v2/images')
    image, _ = _request('POST', images, token, {
        'name': TINY_IMAGE_NAME, 'disk_format': 'raw',
        'container_format': 'bare', 'visibility': 'public'})

    # The fake driver never reads the image, so 1 KiB of zeros will do.
    _request('PUT', '%s/%s/file' % (images, image['id']), token,
             data=b'\0' * 1024,
             headers={'Content-Type': 'application/octet-stream'})
    return image['id']


def _create_flavors(settings, token):
    flavors = settings.url('nova-api', '/v2.1/flavors')
    for flavor_id, ram in (('loopback-1', 64), ('loopback-2', 128)):
        _request('POST', flavors, token, {'flavor': {
            'name': flavor_id, 'id': flavor_id, 'ram': ram, 'vcpus': 1,
            'disk': 1}})


def _discover_hosts(settings, token, timeout=180.0):
    """Map the computes to cell1 and wait until Nova can schedule to them."""
    manage = [settings.bin('nova-manage'), '--config-file',
              _nova_conf(settings)]
    hypervisors_url = settings.url(
        'nova-api', '/v2.1/os-hypervisors/detail')
    deadline = time.monotonic() + timeout
    expected = set(settings.hosts)
    while time.monotonic() < deadline:
        for host in settings.hosts:
            name = compute_service_name(host)
            if process.is_running(settings.state_dir, name) is None:
                raise CloudError('%s exited during start-up; see %s.'
                                 % (name, process.log_file(
                                     settings.state_dir, name)))

        _run(settings, 'nova-manage cell_v2 discover_hosts',
             manage + ['cell_v2', 'discover_hosts'])
        result, _ = _request('GET', hypervisors_url, token)
        found = {hv['service']['host'] for hv in result['hypervisors']}
        if expected <= found and _gpu_providers_ready(settings, token):
            return
        time.sleep(2)
    raise CloudError('The computes %s did not register their GPUs within '
                     '%d s; see the nova-compute logs in %s.'
                     % (', '.join(sorted(expected)), timeout,
                        settings.path('log')))


def _gpu_providers_ready(settings, token):
    """Return True when Placement has a resource provider per GPU."""
    expected = sum(layout.gpus for layout in settings.hosts.values())
    resource_class = 'CUSTOM_PCI_%s_%s' % (
        config.gpu_layout.NVIDIA_VENDOR_ID.upper(),
        settings.gpu_alias()['product_id'].upper())
    url = settings.url('placement', '/resource_providers?resources=%s:1'
                       % resource_class)
    result, _ = _request('GET', url, token,
                         headers={'OpenStack-API-Version': 'placement 1.14'})
    return len(result['resource_providers']) >= expected


# --- commands ------------------------------------------------------------

def _state(settings):
    return {
        'port_base': settings.port_base,
        'hosts': settings.hosts_text,
        'mysql_port': settings.mysql_port,
        'rabbit_port': settings.rabbit_port,
        'plugins': settings.plugins._asdict(),
    }


def save_state(settings, extra=None):
    state = _state(settings)
    state.update(extra or {})
    _write(settings.path('cloud.json'), json.dumps(state, indent=2) + '\n')


def load_state(state_dir):
    try:
        with open(os.path.join(state_dir, 'cloud.json')) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def up(settings):
    """Start every service; return a dict of timings and ids."""
    if any(process.is_running(settings.state_dir, name)
           for name in process.services(settings.state_dir)):
        raise CloudError('The loopback cloud in %s is already running; run '
                         '"down" first.' % settings.state_dir)

    started = time.monotonic()
    for stale in ('log', 'run', 'etc', 'nova', 'glance', 'keystone'):
        shutil.rmtree(settings.path(stale), ignore_errors=True)
    os.makedirs(settings.path('log'))

    settings.plugins = select_plugins(
        detect_plugins(), os.environ.get('LOOPBACK_PLUGINS', 'auto'))
    _log('plugins enabled: %s', ', '.join(
        name for name, on in settings.plugins._asdict().items() if on)
        or 'none')

    # A new cloud looks for the shared servers again, on the usual ports
    # unless LOOPBACK_MYSQL_PORT or LOOPBACK_RABBIT_PORT names others.
    settings.mysql_port = int(os.environ.get('LOOPBACK_MYSQL_PORT', 3306))
    settings.rabbit_port = int(os.environ.get('LOOPBACK_RABBIT_PORT', 5672))
    _ensure_mariadb(settings)
    _ensure_rabbitmq(settings)
    _reset_backends(settings)
    write_configs(settings)
    save_state(settings)

    _log('starting keystone on port %d', settings.port('keystone'))
    _start_keystone(settings)
    process.wait_for_http(settings.url('keystone', '/v3'), 'keystone',
                          settings.state_dir)
    token = admin_token(settings)
    _register_services(settings, token)

    _log('starting placement, glance and the network stand-in')
    _start_placement(settings)
    _start_glance(settings)
    _gunicorn(settings, 'network-standin', 'network_standin', {})

    _log('starting nova-api, nova-conductor and nova-scheduler')
    _start_nova_control(settings)
    for name, path in (('placement', '/'), ('glance', '/versions'),
                       ('network-standin', '/'), ('nova-api', '/')):
        process.wait_for_http(settings.url(name, path), name,
                              settings.state_dir)

    _log('starting %d nova-compute services: %s', len(settings.hosts),
         ', '.join(settings.hosts))
    _start_computes(settings)
    image_id = _upload_image(settings, token)
    _create_flavors(settings, token)
    _discover_hosts(settings, token)

    elapsed = time.monotonic() - started
    save_state(settings, {'image_id': image_id,
                          'startup_seconds': round(elapsed, 1)})
    _log('up in %.0f s; state and logs in %s', elapsed, settings.state_dir)
    return {'startup_seconds': elapsed, 'image_id': image_id}


def down(settings, keep_logs=True):
    """Stop every service this state directory started, newest first."""
    names = process.services(settings.state_dir)
    order = ([compute_service_name(host) for host in settings.hosts]
             + list(reversed(NOVA_SERVICES)) + list(reversed(WSGI_SERVICES))
             + ['rabbitmq', 'mariadb'])
    names = [n for n in order if n in names] + [
        n for n in names if n not in order]

    backing = [n for n in ('rabbitmq', 'mariadb') if n in names]
    for name in names:
        if name in backing:
            continue
        if process.stop(settings.state_dir, name):
            _log('stopped %s', name)

    try:
        _drop_backends(settings)
    except CloudError as exc:
        _log('could not drop the databases or vhost: %s', exc)

    for name in backing:
        if process.stop(settings.state_dir, name):
            _log('stopped %s', name)

    listening = [port for port in range(settings.port_base,
                                        settings.port_base + 12)
                 if process.port_open(port)]
    if listening:
        raise CloudError('Ports still listening after down: %s.'
                         % ', '.join(map(str, listening)))
    if not keep_logs:
        shutil.rmtree(settings.path('log'), ignore_errors=True)


def status(settings):
    """Return a list of (service, pid or None, RSS KiB, log path)."""
    rows = []
    for name in process.services(settings.state_dir):
        pid = process.is_running(settings.state_dir, name)
        rss = process.rss_kib(pid) if pid else 0
        rows.append((name, pid, rss,
                     process.log_file(settings.state_dir, name)))
    return rows


def settings_from_env(state_dir=None):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
    state_dir = state_dir or os.environ.get(
        'LOOPBACK_DIR', os.path.join(repo, '.loopback'))
    venv_dir = os.environ.get('LOOPBACK_VENV',
                              os.path.join(state_dir, 'venv'))
    saved = load_state(state_dir) or {}
    settings = config.Settings(
        state_dir, venv_dir,
        port_base=int(os.environ.get('LOOPBACK_PORT_BASE',
                                     saved.get('port_base', 18000))),
        hosts_text=os.environ.get('LOOPBACK_GPU_HOSTS',
                                  saved.get('hosts', config.DEFAULT_HOSTS)),
        mysql_port=saved.get('mysql_port', 3306),
        rabbit_port=saved.get('rabbit_port', 5672))
    if saved.get('plugins'):
        settings.plugins = config.Plugins(**saved['plugins'])
    return settings


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='loopback-cloud',
        description='Run an OpenStack cloud with emulated GPU hosts on '
                    '127.0.0.1.')
    parser.add_argument('command', choices=('up', 'down', 'status'))
    args = parser.parse_args(argv)
    settings = settings_from_env()

    try:
        if args.command == 'up':
            try:
                up(settings)
            except Exception as exc:
                print('loopback-cloud: error: %s' % exc, file=sys.stderr)
                _log('start-up failed; stopping what started. Logs stay '
                     'in %s', settings.path('log'))
                down(settings)
                return 1
        elif args.command == 'down':
            down(settings)
            _log('down; logs kept in %s', settings.path('log'))
        else:
            rows = status(settings)
            if not rows:
                print('loopback cloud: not running (%s)' % settings.state_dir)
            total = 0
            for name, pid, rss, log_path in rows:
                total += rss
                print('%-28s %-8s %8.0f MiB  %s' % (
                    name, pid or 'stopped', rss / 1024.0, log_path))
            if rows:
                print('%-28s %-8s %8.0f MiB'
                      % ('total RSS', '', total / 1024.0))
    except (CloudError, process.ServiceError, ValueError) as exc:
        print('loopback-cloud: error: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
