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

"""nova-scheduler host filters of sovereign-ai.

Operators load them the way Nova loads its own filters::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = sovereign_ai.nova.filters.all_filters
    enabled_filters = ...,PciPassthroughFilter,GpuTopologyFilter
"""

from nova.scheduler import filters
from oslo_log import log as logging
import stevedore

LOG = logging.getLogger(__name__)

FILTER_NAMESPACE = 'sovereign_ai.nova.filters'


def _log_load_failure(manager, entry_point, error):
    LOG.warning('Failed to load scheduler filter %(name)s from %(target)s: '
                '%(error)s. Check that sovereign-ai is installed in the '
                'nova-scheduler environment.',
                {'name': entry_point.name, 'target': entry_point.value,
                 'error': error})


def all_filters():
    """Return the filter classes of the ``sovereign_ai.nova.filters`` group.

    ``[filter_scheduler] available_filters`` accepts this function next to
    ``nova.scheduler.filters.all_filters``. An entry point that fails to
    load, or names something other than a host filter class, is skipped with
    a warning, so the scheduler still starts with the other filters.
    """
    manager = stevedore.ExtensionManager(
        FILTER_NAMESPACE,
        invoke_on_load=False,
        on_load_failure_callback=_log_load_failure)

    classes = []
    for extension in sorted(manager, key=lambda ext: ext.name):
        plugin = extension.plugin
        if isinstance(plugin, type) and issubclass(
                plugin, filters.BaseHostFilter):
            classes.append(plugin)
        else:
            LOG.warning('Skipped scheduler filter entry point %(name)s: '
                        '%(plugin)r is not a subclass of '
                        'nova.scheduler.filters.BaseHostFilter.',
                        {'name': extension.name, 'plugin': plugin})
    return classes
