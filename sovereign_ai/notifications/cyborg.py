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

"""GPU counts of Cyborg device profiles, read through the Cyborg API."""

import fnmatch
import time

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from oslo_log import log as logging

from sovereign_ai.conf import notifications as notifications_conf

LOG = logging.getLogger(__name__)

# Cyborg's resource classes of whole and virtual GPUs.
CYBORG_GPU_CLASSES = ('PGPU', 'VGPU')

# Seconds before a failed lookup of the same profile is tried again.
FAILURE_CACHE_TIME = 30


class CyborgUnavailable(Exception):
    """Cyborg cannot be reached now; the lookup may succeed later."""


class CyborgNotConfigured(Exception):
    """The Cyborg client group has no credentials; retrying cannot help."""


class DeviceProfileNotFound(Exception):
    """Cyborg has no device profile of that name."""


def gpu_count(profile, gpu_resource_classes):
    """Return the number of GPUs a device profile requests.

    :param profile: a device profile as the Cyborg v2 API returns it.
    :param gpu_resource_classes: shell-style patterns of extra GPU classes.
    """
    patterns = list(CYBORG_GPU_CLASSES) + list(gpu_resource_classes)
    count = 0
    for group in profile.get('groups') or []:
        for key, value in group.items():
            if not key.startswith('resources'):
                continue
            resource_class = key.partition(':')[2]
            if any(fnmatch.fnmatchcase(resource_class, pattern)
                   for pattern in patterns):
                count += int(value)
    return count


class DeviceProfileResolver:
    """Read and cache the GPU counts of Cyborg device profiles.

    :param conf: the configuration with the [sovereign_ai_cyborg] group.
    :param cache_time: seconds a GPU count stays cached.
    :param gpu_resource_classes: shell-style patterns of extra GPU classes.
    """

    def __init__(self, conf, cache_time, gpu_resource_classes):
        self.conf = conf
        self.cache_time = cache_time
        self.gpu_resource_classes = gpu_resource_classes
        self._adapter = None
        self._cache = {}
        self._failures = {}

    def _get_adapter(self):
        if self._adapter is not None:
            return self._adapter

        group = notifications_conf.CYBORG_GROUP.name
        auth = ks_loading.load_auth_from_conf_options(self.conf, group)
        if auth is None:
            raise CyborgNotConfigured(
                '[%s] auth_type is not set, so device profiles cannot be '
                'read from Cyborg' % group)
        session = ks_loading.load_session_from_conf_options(
            self.conf, group, auth=auth)
        self._adapter = ks_loading.load_adapter_from_conf_options(
            self.conf, group, session=session, auth=auth)
        return self._adapter

    def count(self, name):
        """Return the GPU count of the device profile ``name``.

        :raises CyborgUnavailable: when Cyborg cannot be reached.
        :raises CyborgNotConfigured: when no credentials are configured.
        :raises DeviceProfileNotFound: when Cyborg has no such profile.
        """
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.cache_time:
            return cached[1]

        failed_at = self._failures.get(name)
        if failed_at is not None and now - failed_at < FAILURE_CACHE_TIME:
            raise CyborgUnavailable(
                'the last lookup of device profile %s failed %.0f seconds '
                'ago' % (name, now - failed_at))

        try:
            profile = self._read(name)
        except CyborgUnavailable:
            self._failures[name] = now
            raise

        count = gpu_count(profile, self.gpu_resource_classes)
        self._cache[name] = (now, count)
        self._failures.pop(name, None)
        return count

    def _read(self, name):
        adapter = self._get_adapter()
        try:
            response = adapter.get('/v2/device_profiles',
                                   params={'name': name},
                                   raise_exc=False)
        except ks_exceptions.ClientException as error:
            raise CyborgUnavailable(str(error))

        if response.status_code >= 500 or response.status_code in (401, 403):
            raise CyborgUnavailable(
                'GET /v2/device_profiles returned HTTP %d'
                % response.status_code)
        if response.status_code == 404:
            raise DeviceProfileNotFound(name)
        if response.status_code >= 400:
            raise CyborgUnavailable(
                'GET /v2/device_profiles returned HTTP %d'
                % response.status_code)

        try:
            profiles = response.json().get('device_profiles') or []
        except ValueError as error:
            raise CyborgUnavailable('invalid JSON from Cyborg: %s' % error)
        for profile in profiles:
            if profile.get('name') == name:
                return profile
        raise DeviceProfileNotFound(name)
