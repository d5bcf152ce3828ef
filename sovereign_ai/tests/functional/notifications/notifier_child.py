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

"""A Nova-like process that sends notifications through the driver.

The SIGKILL test runs it as a subprocess::

    python -m sovereign_ai.tests.functional.notifications.notifier_child \
        --config-file FILE --first N --count M --progress FILE

It sends ``instance.create.end`` for the instances numbered ``first`` to
``first + count - 1``, appends each number to the progress file once
``notify`` returned, and exits when the spool is empty.
"""

import argparse
import sys
import time

from oslo_config import cfg
import oslo_messaging

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import driver
from sovereign_ai.tests.functional.notifications import base


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--config-file', required=True)
    parser.add_argument('--first', type=int, default=0)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--progress', required=True)
    parser.add_argument('--versioned-topic', required=True)
    parser.add_argument('--pause', type=float, default=0.0,
                        help='Seconds to sleep after each notification.')
    args = parser.parse_args(argv)

    conf = cfg.ConfigOpts()
    notifications_conf.register_opts(conf)
    from nova.conf import pci as nova_pci_conf
    nova_pci_conf.register_opts(conf)
    conf(['--config-file', args.config_file], project='sovereign-ai-test')

    transport = oslo_messaging.get_notification_transport(conf, url='fake:/')
    notifier = oslo_messaging.Notifier(
        transport, publisher_id='nova-compute:gpu-node-07',
        driver='accelerator_usage', topics=[args.versioned_topic])

    with open(args.progress, 'a') as progress:
        for index in range(args.first, args.first + args.count):
            payload = base.gpu_message(index)['payload']
            notifier.info({}, 'instance.create.end', payload)
            progress.write('%d\n' % index)
            progress.flush()
            time.sleep(args.pause)

    options = conf[notifications_conf.GROUP.name]
    usage_sender = driver.get_sender(conf, options)
    while usage_sender.spool.size():
        time.sleep(0.1)
    driver.stop_senders()
    return 0


if __name__ == '__main__':
    sys.exit(main())
