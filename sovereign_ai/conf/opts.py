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

"""Option discovery for oslo-config-generator.

The ``oslo.config.opts`` entry point ``sovereign_ai`` names
:func:`list_opts`, so ``oslo-config-generator --namespace sovereign_ai``
lists every option this package registers, with its help text.
"""

from sovereign_ai.conf import ironic
from sovereign_ai.conf import notifications
from sovereign_ai.conf import scheduler

_OPT_MODULES = (scheduler, notifications, ironic)


def list_opts():
    """Return (group, options) pairs for every option group of the package."""
    groups = [(module.GROUP, module.list_opts()) for module in _OPT_MODULES]
    groups.append(
        (notifications.CYBORG_GROUP, notifications.list_cyborg_opts()))
    return groups
