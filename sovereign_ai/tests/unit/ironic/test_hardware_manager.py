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

# Importing the config module first registers the options that IPA's
# modules read at import time, as the agent does at start-up.
from ironic_python_agent import config  # noqa: F401
from ironic_python_agent import errors

from sovereign_ai.ironic import hardware_manager
from sovereign_ai.tests import base


class ErrorClassTest(base.TestCase):

    def test_step_kind(self):
        cases = [
            ({'service_step': {'step': 'burnin_gpus'}},
             errors.ServicingError),
            ({'clean_step': {'step': 'burnin_gpus'}}, errors.CleaningError),
            ({'deploy_step': {'step': 'burnin_gpus'}},
             errors.DeploymentError),
            ({'provision_state': 'clean wait'}, errors.CleaningError),
            ({'provision_state': 'servicing'}, errors.ServicingError),
            ({}, errors.DeploymentError),
            (None, errors.DeploymentError),
        ]
        for node, expected in cases:
            self.assertIs(expected, hardware_manager.error_class(node))
