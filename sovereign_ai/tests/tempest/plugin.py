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

"""Tempest plugin of sovereign-ai.

Tempest finds it through the tempest.test_plugins entry point
sovereign_ai. Every test skips unless the feature it checks is turned
on in [sovereign_ai_feature_enabled], so the plugin is safe to install
next to any cloud.
"""

import os

from tempest import config
from tempest.test_discover import plugins

from sovereign_ai.tests.tempest import config as plugin_config


class SovereignAiTempestPlugin(plugins.TempestPlugin):
    """Register the options and tests of sovereign-ai with Tempest."""

    def load_tests(self):
        base_path = os.path.split(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))))[0]
        test_dir = 'sovereign_ai/tests/tempest'
        full_test_dir = os.path.join(base_path, test_dir)
        return full_test_dir, base_path

    def register_opts(self, conf):
        for group, opts in plugin_config.OPT_GROUPS:
            config.register_opt_group(conf, group, opts)

    def get_opt_lists(self):
        return [(group.name, opts) for group, opts in plugin_config.OPT_GROUPS]
