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

"""GPU-hours per project and model from recorded usage notifications.

Usage notifications are paired per instance in event time order:

* a start opens an interval of the instance's accelerators and closes the
  interval that was open, because resizes, moves and rebuilds restate the
  accelerators with a new start;
* an end closes the open interval;
* an exists opens an interval at the beginning of its audit period when
  none is open, for records that begin in the middle of an instance's
  life, and is ignored otherwise;
* an exists that comes after the instance's end never re-opens it. Nova's
  audit reports instances deleted during the audit period, so its exists
  can arrive after the end. It only adds the part of its audit period
  before the first interval seen for the instance, up to the end.

Intervals still open at the end of the input count up to the end of the
report window. Notifications with the same ``message_id`` are counted
once.
"""

from oslo_serialization import jsonutils
from oslo_utils import timeutils

from sovereign_ai.notifications import events

_ORDER = {events.END: 0, events.START: 1, events.EXISTS: 2}

#: The event types that ``read_records`` reads.
USAGE_EVENT_TYPES = frozenset(_ORDER)

EXPECTED_STRING = 'expected a non-empty string'
EXPECTED_TIME = 'expected an ISO 8601 time such as 2026-11-01T00:00:00Z'
EXPECTED_COUNT = 'expected a whole number of 0 or more, or null when unknown'


class InvalidRecord(ValueError):
    """A usage record that cannot be read; the message names the field."""

    def __init__(self, source, line, message):
        super().__init__('%s:%d: %s' % (source, line, message))


class Segment:
    """A group of accelerators of one instance, with their interval."""

    def __init__(self, project_id, model, kind, count, start):
        self.project_id = project_id
        self.model = model
        self.kind = kind
        self.count = count
        self.start = start


def parse_time(value):
    """Return a naive UTC datetime from an ISO 8601 string."""
    return timeutils.normalize_time(timeutils.parse_isotime(value))


def _field(record, path, source, line):
    value = record
    for key in path.split('.'):
        if not isinstance(value, dict) or key not in value:
            raise InvalidRecord(source, line, 'missing field %s' % path)
        value = value[key]
    return value


def _invalid(source, line, path, value, expected):
    return InvalidRecord(source, line, 'invalid field %s: %r (%s)'
                         % (path, value, expected))


def read_records(lines, source, skipped=None):
    """Parse JSON lines of usage notifications.

    :param lines: an iterable of text lines.
    :param source: the file name used in error messages.
    :param skipped: an optional dict that receives, per event type that is
        not a usage event, ``[first line number, number of records]``.
    :returns: a list of (record, source, line number).
    :raises InvalidRecord: on the first invalid line.
    """
    records = []
    for number, text in enumerate(lines, 1):
        text = text.strip()
        if not text:
            continue

        try:
            record = jsonutils.loads(text)
        except ValueError as error:
            raise InvalidRecord(source, number, 'invalid JSON: %s' % error)
        if not isinstance(record, dict):
            raise InvalidRecord(source, number, 'expected a JSON object')

        event_type = _field(record, 'event_type', source, number)
        if not isinstance(event_type, str) or not event_type:
            raise _invalid(source, number, 'event_type', event_type,
                           EXPECTED_STRING)
        if event_type not in _ORDER:
            # Other notifications in a recorded stream are not usage.
            if skipped is not None:
                skipped.setdefault(event_type, [number, 0])[1] += 1
            continue

        _validate(record, source, number)
        records.append((record, source, number))
    return records


def _validate(record, source, number):
    for path in ('message_id', 'payload.instance_id', 'payload.project_id',
                 'payload.source_message_id'):
        value = _field(record, path, source, number)
        if not isinstance(value, str) or not value:
            raise _invalid(source, number, path, value, EXPECTED_STRING)

    event_time = _field(record, 'payload.event_time', source, number)
    try:
        record['payload']['event_time'] = parse_time(event_time)
    except (TypeError, ValueError):
        raise _invalid(source, number, 'payload.event_time', event_time,
                       EXPECTED_TIME)

    count = _field(record, 'payload.count', source, number)
    if count is not None and (isinstance(count, bool)
                              or not isinstance(count, int) or count < 0):
        raise _invalid(source, number, 'payload.count', count,
                       EXPECTED_COUNT)

    beginning = record['payload'].get('audit_period_beginning')
    if beginning:
        try:
            record['payload']['audit_period_beginning'] = parse_time(
                beginning)
        except (TypeError, ValueError):
            raise _invalid(source, number, 'payload.audit_period_beginning',
                           beginning, EXPECTED_TIME)


def _groups(records):
    """Return deduplicated records grouped by source event, in time order."""
    seen = set()
    groups = {}
    for record, _source, _number in records:
        if record['message_id'] in seen:
            continue
        seen.add(record['message_id'])

        payload = record['payload']
        key = (payload['instance_id'], payload['source_message_id'],
               record['event_type'])
        groups.setdefault(key, []).append(record)

    return sorted(groups.values(), key=lambda group: (
        group[0]['payload']['event_time'], _ORDER[group[0]['event_type']]))


def _add_late_exists(group, first_start, ended_at, open_group, close):
    """Count an exists that arrived after its instance's end.

    Only the part of the audit period before the first interval seen for
    the instance counts, because the intervals already cover the rest, and
    the instance stays closed.
    """
    payload = group[0]['payload']
    instance_id = payload['instance_id']
    beginning = payload.get('audit_period_beginning')
    end = ended_at[instance_id]
    covered_from = min(first_start[instance_id], end)
    if beginning is None or beginning >= covered_from:
        return

    open_group(group, beginning)
    close(instance_id, covered_from)
    first_start[instance_id] = beginning
    ended_at[instance_id] = end


def gpu_hours(records, window_start, window_end):
    """Compute GPU-hours per project, model and kind in a window.

    :param records: as returned by :func:`read_records`.
    :param window_start: naive UTC datetime.
    :param window_end: naive UTC datetime, after ``window_start``.
    :returns: a list of dicts with ``project_id``, ``model``, ``kind``,
        ``instances``, ``gpu_hours`` and ``unknown_count_hours`` (hours of
        instances whose GPU count is unknown), sorted by project and model.
    """
    totals = {}
    open_segments = {}
    # Per instance: the start of the first interval seen, and the time of
    # the end that closed the instance when no interval is open since.
    first_start = {}
    ended_at = {}

    def close(instance_id, end):
        for segment in open_segments.pop(instance_id, []):
            start = max(segment.start, window_start)
            stop = min(end, window_end)
            if stop <= start:
                continue
            hours = (stop - start).total_seconds() / 3600.0
            key = (segment.project_id, segment.model, segment.kind)
            row = totals.setdefault(key, {
                'project_id': segment.project_id, 'model': segment.model,
                'kind': segment.kind, 'instances': set(), 'gpu_hours': 0.0,
                'unknown_count_hours': 0.0})
            row['instances'].add(instance_id)
            if segment.count is None:
                row['unknown_count_hours'] += hours
            else:
                row['gpu_hours'] += hours * segment.count

    def open_group(group, start):
        instance_id = group[0]['payload']['instance_id']
        first_start.setdefault(instance_id, start)
        ended_at.pop(instance_id, None)
        segments = []
        for record in group:
            payload = record['payload']
            if payload['count'] == 0:
                continue
            segments.append(Segment(
                payload['project_id'], payload.get('model'),
                payload.get('accelerator_kind'), payload['count'], start))
        open_segments[instance_id] = segments

    for group in _groups(records):
        payload = group[0]['payload']
        instance_id = payload['instance_id']
        when = payload['event_time']
        event_type = group[0]['event_type']

        if event_type == events.START:
            close(instance_id, when)
            open_group(group, when)
        elif event_type == events.END:
            close(instance_id, when)
            first_start.setdefault(instance_id, when)
            ended_at[instance_id] = when
        elif instance_id in ended_at:
            _add_late_exists(group, first_start, ended_at, open_group, close)
        elif instance_id not in open_segments:
            open_group(group, payload.get('audit_period_beginning') or when)

    for instance_id in list(open_segments):
        close(instance_id, window_end)

    rows = []
    for key in sorted(totals, key=lambda k: tuple(str(part) for part in k)):
        row = totals[key]
        row['instances'] = len(row['instances'])
        row['gpu_hours'] = round(row['gpu_hours'], 6)
        row['unknown_count_hours'] = round(row['unknown_count_hours'], 6)
        rows.append(row)
    return rows
