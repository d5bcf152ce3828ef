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

"""nova-scheduler host weighers of sovereign-ai.

Operators add them to Nova's weighers::

    [filter_scheduler]
    weight_classes = nova.scheduler.weights.all_weighers,
        sovereign_ai.nova.weighers.GpuFragmentationWeigher

``sovereign_ai.nova.weighers.all_weighers`` names every weigher of this
package and fits the same option.
"""

from sovereign_ai.nova.weighers import gpu_fragmentation

GpuFragmentationWeigher = gpu_fragmentation.GpuFragmentationWeigher


def all_weighers():
    """Return the weigher classes of sovereign-ai."""
    return [GpuFragmentationWeigher]
