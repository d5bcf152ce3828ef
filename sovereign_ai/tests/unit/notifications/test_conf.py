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

"""Options of the [sovereign_ai_notifications] group."""

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.conf import opts
from sovereign_ai.tests import base


class TestOptions(base.TestCase):

    def test_every_option_has_help(self):
        for opt in (notifications_conf.list_opts()
                    + notifications_conf.list_cyborg_opts()):
            self.assertTrue(opt.help, opt.name)

    def test_listed_for_generator(self):
        groups = {group.name: options for group, options in opts.list_opts()}
        names = [opt.name for opt in groups['sovereign_ai_notifications']]
        self.assertIn('spool_path', names)
        self.assertIn('spool_max_records', names)
