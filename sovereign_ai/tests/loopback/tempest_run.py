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

"""Run Tempest against the loopback cloud.

``run`` writes ``tempest.conf`` into a Tempest workspace under the state
directory and runs the sovereign-ai tests and a small upstream compute
subset. ``check`` does what a CI job does: bring the cloud up, run the
tests, print the measurements and bring the cloud down again, keeping the
service logs when anything failed.
"""

import argparse
import os
import subprocess
import sys
import time

from sovereign_ai.tests.loopback import cloud
from sovereign_ai.tests.loopback import config

# Upstream tests that show the cloud works without any sovereign-ai
# plugin: server create and show, and flavor reads.
UPSTREAM_REGEX = (
    r'^tempest\.api\.compute\.(servers\.test_create_server\.ServersTestJSON'
    r'|flavors\.test_flavors\.)')

# The API tests may run in parallel with the upstream ones. The GPU
# scenario tests run alone, because they count on free GPUs.
PARALLEL_REGEX = r'(^sovereign_ai\.tests\.tempest\.api\.|%s)' % UPSTREAM_REGEX
SERIAL_REGEX = r'^sovereign_ai\.tests\.tempest\.scenario\.'


def _ini(sections):
    lines = []
    for section, items in sections.items():
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % (key, value) for key, value in items)
        lines.append('')
    return '\n'.join(lines)


def _bool(value):
    return 'true' if value else 'false'


def render_tempest_conf(settings, workspace, image_id):
    plugins = settings.plugins
    hosts = ';'.join('%s:%s' % (host, layout.format())
                     for host, layout in settings.hosts.items())
    return _ini({
        'DEFAULT': [
            ('log_dir', os.path.join(workspace, 'logs')),
            ('log_file', 'tempest.log'),
        ],
        'auth': [
            ('admin_username', 'admin'),
            ('admin_password', config.ADMIN_PASSWORD),
            ('admin_project_name', 'admin'),
            ('admin_domain_name', 'Default'),
            ('use_dynamic_credentials', 'true'),
            ('create_isolated_networks', 'false'),
        ],
        'identity': [
            ('uri_v3', settings.keystone_url),
            ('auth_version', 'v3'),
            ('region', config.REGION),
        ],
        'identity-feature-enabled': [('api_v2', 'false')],
        'compute': [
            ('image_ref', image_id),
            ('image_ref_alt', image_id),
            ('flavor_ref', 'loopback-1'),
            ('flavor_ref_alt', 'loopback-2'),
            ('min_compute_nodes', str(len(settings.hosts))),
            ('max_microversion', 'latest'),
            ('build_interval', '1'),
            ('build_timeout', '120'),
        ],
        'compute-feature-enabled': [
            ('resize', 'true'),
            ('console_output', 'false'),
            ('interface_attach', 'false'),
            ('change_password', 'false'),
            ('vnc_console', 'false'),
            ('snapshot', 'false'),
            ('shelve', 'false'),
            ('cold_migration', 'false'),
            ('live_migration', 'false'),
            ('attach_encrypted_volume', 'false'),
        ],
        'service_available': [
            ('nova', 'true'),
            ('glance', 'true'),
            ('neutron', 'false'),
            ('cinder', 'false'),
            ('swift', 'false'),
        ],
        'validation': [('run_validation', 'false')],
        'sovereign_ai': [
            ('gpu_alias', config.GPU_ALIAS),
            ('gpu_hosts', hosts),
            ('notification_transport_url', settings.transport_url),
        ],
        'sovereign_ai_feature_enabled': [
            ('gpu_topology_filter', _bool(plugins.gpu_topology_filter)),
            ('gpu_fragmentation_weigher',
             _bool(plugins.gpu_fragmentation_weigher)),
            ('accelerator_usage_notifier',
             _bool(plugins.accelerator_usage_notifier)),
            ('extra_spec_validation', _bool(plugins.extra_spec_validation)),
        ],
    })


def prepare_workspace(settings):
    """Create the Tempest workspace and write its tempest.conf."""
    state = cloud.load_state(settings.state_dir) or {}
    if 'image_id' not in state:
        raise cloud.CloudError('The loopback cloud in %s is not up; run '
                               '"tools/loopback-cloud up" first.'
                               % settings.state_dir)

    workspace = settings.path('tempest')
    if not os.path.exists(os.path.join(workspace, '.stestr.conf')):
        subprocess.run([
            settings.bin('tempest'), 'init', '--workspace-path',
            settings.path('tempest-workspaces.yaml'), workspace],
            check=True, stdout=subprocess.DEVNULL)
    conf_path = os.path.join(workspace, 'etc', 'tempest.conf')
    with open(conf_path, 'w') as f:
        f.write(render_tempest_conf(settings, workspace, state['image_id']))
    return workspace, conf_path


def run(settings, concurrency=2):
    """Run the tests; return True when every test passed or skipped."""
    workspace, conf_path = prepare_workspace(settings)
    ok = True
    for regex, args in ((PARALLEL_REGEX, ['--concurrency',
                                          str(concurrency)]),
                        (SERIAL_REGEX, ['--serial'])):
        argv = [settings.bin('tempest'), 'run', '--config-file', conf_path,
                '--regex', regex] + args
        cloud._log('$ %s', ' '.join(argv))
        result = subprocess.run(argv, cwd=workspace)
        ok = ok and result.returncode == 0
    return ok


def _rss_mib(settings):
    return sum(rss for _, _, rss, _ in cloud.status(settings)) / 1024.0


def check(settings, concurrency=2):
    """Bring the cloud up, run the tests and bring it down; return 0 or 1."""
    started = time.monotonic()
    ok = False
    try:
        result = cloud.up(settings)
        rss_up = _rss_mib(settings)
        tests_started = time.monotonic()
        ok = run(settings, concurrency=concurrency)
        rss_end = _rss_mib(settings)
        cloud._log('start-up %.0f s, tests %.0f s, total %.0f s; cloud RSS '
                   '%.0f MiB after start-up, %.0f MiB after the tests',
                   result['startup_seconds'],
                   time.monotonic() - tests_started,
                   time.monotonic() - started, rss_up, rss_end)
    except (cloud.CloudError, ValueError) as exc:
        cloud._log('error: %s', exc)
    finally:
        cloud.down(settings)

    if ok:
        cloud._log('all tests passed or skipped')
        return 0
    cloud._log('FAILED; service logs kept in %s, Tempest logs in %s',
               settings.path('log'), settings.path('tempest', 'logs'))
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='loopback-cloud tempest',
        description='Run Tempest against the loopback cloud.')
    parser.add_argument('command', choices=('run', 'check'), nargs='?',
                        default='run')
    parser.add_argument('--concurrency', type=int, default=2,
                        help='Tempest workers for the API tests.')
    args = parser.parse_args(argv)

    settings = cloud.settings_from_env()
    if args.command == 'check':
        return check(settings, concurrency=args.concurrency)

    try:
        return 0 if run(settings, concurrency=args.concurrency) else 1
    except cloud.CloudError as exc:
        print('loopback-cloud: error: %s' % exc, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
