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

"""nova-compute with the emulated GPU driver available.

Nova 34 imports ``[DEFAULT] compute_driver`` only from the ``nova.virt``
package. This entry point registers
:mod:`sovereign_ai.tests.loopback.fake_gpu_driver` as
``nova.virt.sovereign_ai_loopback`` and then runs Nova's own nova-compute
main, so a compute configured with
``compute_driver = sovereign_ai_loopback.FakeGpuDriver`` loads it. Nothing
is written into the installed Nova. Run it as
``python -m sovereign_ai.tests.loopback.compute --config-file ...``.
"""

import sys

# Nova's command module applies its monkey patching on import, which must
# happen before anything else imports Nova.
from nova.cmd import compute as nova_compute  # noqa: I100
import nova.virt

from sovereign_ai.tests.loopback import fake_gpu_driver

DRIVER_MODULE = 'sovereign_ai_loopback'


def main():
    sys.modules['nova.virt.%s' % DRIVER_MODULE] = fake_gpu_driver
    setattr(nova.virt, DRIVER_MODULE, fake_gpu_driver)
    sys.argv[0] = 'nova-compute'
    return nova_compute.main()


if __name__ == '__main__':
    sys.exit(main())
