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

"""Rate-limited warnings for code that nova-scheduler runs per host."""

import collections
import threading
import time

# Distinct warning keys remembered for rate limiting. The oldest keys are
# forgotten beyond this, so a large fleet cannot grow the table without
# bound.
REMEMBERED_KEYS = 4096


class WarningLimiter:
    """Warnings rate-limited per key.

    A warning is logged at most once per interval for each key (for example
    host, device and problem). Warnings suppressed inside the interval are
    counted, and the next warning with the same key states the count.

    :param logger: the oslo.log logger that receives the warnings.
    :param interval: a callable that returns the minimum time, in seconds,
        between two warnings with the same key; read at each warning so
        that a configuration reload applies.
    """

    def __init__(self, logger, interval):
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last_logged = collections.OrderedDict()
        self._suppressed = collections.Counter()

    def warn(self, key, message, params):
        interval = self._interval()
        now = time.monotonic()

        with self._lock:
            last = self._last_logged.get(key)
            if last is not None and now - last < interval:
                self._suppressed[key] += 1
                return

            self._last_logged[key] = now
            self._last_logged.move_to_end(key)
            while len(self._last_logged) > REMEMBERED_KEYS:
                oldest, _logged_at = self._last_logged.popitem(last=False)
                self._suppressed.pop(oldest, None)
            suppressed = self._suppressed.pop(key, 0)

        if suppressed:
            message += (' %(suppressed)d more such warnings were suppressed '
                        'in the last %(interval)d seconds.')
            params = dict(params, suppressed=suppressed, interval=interval)
        self._logger.warning(message, params)
