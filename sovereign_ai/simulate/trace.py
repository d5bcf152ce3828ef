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

"""Read and validate fleets and workloads in the Alibaba GPU trace format.

A fleet file (``openb_node_list_*.csv``) has the columns ``sn``,
``cpu_milli``, ``memory_mib``, ``gpu`` and ``model``. A workload file
(``openb_pod_list_*.csv``) has ``name``, ``cpu_milli``, ``memory_mib``,
``num_gpu`` and ``gpu_milli``, and optionally ``gpu_spec`` (allowed GPU
models separated by ``|``). Other columns are ignored.
"""

import csv
import dataclasses
import os

import numpy as np

from sovereign_ai.simulate import gpu_models

WHOLE_GPU_MILLI = 1000

FLEET_COLUMNS = ('sn', 'cpu_milli', 'memory_mib', 'gpu', 'model')
WORKLOAD_COLUMNS = ('name', 'cpu_milli', 'memory_mib', 'num_gpu', 'gpu_milli')


class TraceError(ValueError):
    """Invalid fleet or workload input; the message names file, row, field."""


@dataclasses.dataclass
class Fleet:
    """The GPU nodes of a fleet, one array entry per node."""

    name: str
    hosts: list
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    gpu_count: np.ndarray
    #: Index into :data:`gpu_models.MODEL_NAMES` per node.
    model: np.ndarray
    #: Rows of the file left out because the node has no GPU.
    skipped_cpu_nodes: int = 0

    def __len__(self):
        return len(self.hosts)

    @property
    def gpu_capacity_milli(self):
        """Total GPU capacity of the fleet in milli-GPUs."""
        return int(self.gpu_count.sum()) * WHOLE_GPU_MILLI

    def slots(self, node):
        """Return the :class:`gpu_models.GpuSlot` list of a node."""
        model_name = gpu_models.MODEL_NAMES[self.model[node]]
        return gpu_models.gpu_slots(model_name, int(self.gpu_count[node]))

    def model_name(self, node):
        return gpu_models.MODEL_NAMES[self.model[node]]


@dataclasses.dataclass
class Workload:
    """Tasks in arrival order, one array entry per task."""

    name: str
    names: list
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    num_gpu: np.ndarray
    #: Share of each requested GPU in milli-GPUs; 0 for CPU-only tasks.
    gpu_milli: np.ndarray
    #: Bit i set allows model i of :data:`gpu_models.MODEL_NAMES`; 0 allows
    #: every model.
    spec_mask: np.ndarray

    def __len__(self):
        return len(self.names)

    @property
    def gpu_demand_milli(self):
        """GPU request of each task in milli-GPUs."""
        return self.num_gpu * self.gpu_milli

    def take(self, indices, name=None):
        """Return the workload of the tasks at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return Workload(
            name=name or self.name,
            names=[self.names[i] for i in indices],
            cpu_milli=self.cpu_milli[indices],
            memory_mib=self.memory_mib[indices],
            num_gpu=self.num_gpu[indices],
            gpu_milli=self.gpu_milli[indices],
            spec_mask=self.spec_mask[indices])


def _rows(path, required):
    label = os.path.basename(path)
    try:
        handle = open(path, newline='', encoding='utf-8-sig')
    except FileNotFoundError:
        raise TraceError('%s: file not found.' % path) from None
    except OSError as error:
        raise TraceError('%s: cannot be read: %s.'
                         % (path, error.strerror)) from None

    with handle:
        try:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise TraceError(
                    '%s: the file is empty: expected a header row with the '
                    'columns %s.' % (label, ', '.join(required)))

            header = [column.strip() for column in header]
            missing = [column for column in required if column not in header]
            if missing:
                raise TraceError(
                    '%s: missing column %s in the header row: expected the '
                    'columns %s.' % (label, ', '.join(missing),
                                     ', '.join(required)))
            reader.fieldnames = header

            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
        except UnicodeDecodeError:
            raise TraceError('%s: not a UTF-8 text file.' % label) from None
        except csv.Error as error:
            raise TraceError('%s: invalid CSV: %s.' % (label, error)) from None

    if not rows:
        raise TraceError('%s: the file has a header but no data rows.'
                         % label)
    return label, rows


def _field(label, line, row, field):
    value = row.get(field)
    if value is None:
        raise TraceError('%s: line %d: field %s is missing: the row has '
                         'fewer columns than the header.'
                         % (label, line, field))
    return value.strip()


def _count(label, line, row, field, maximum=None):
    value = _field(label, line, row, field)
    try:
        number = int(value)
    except ValueError:
        raise TraceError(
            '%s: line %d: field %s: invalid value %r: expected a whole '
            'number of 0 or more.' % (label, line, field, value)) from None

    if number < 0:
        raise TraceError(
            '%s: line %d: field %s: invalid value %r: expected a whole '
            'number of 0 or more.' % (label, line, field, value))
    if maximum is not None and number > maximum:
        raise TraceError(
            '%s: line %d: field %s: invalid value %r: expected at most %d.'
            % (label, line, field, value, maximum))
    return number


def _model(label, line, field, value):
    if value not in gpu_models.GPU_MODELS:
        raise TraceError(
            '%s: line %d: field %s: unknown GPU model %r: expected one of '
            '%s.' % (label, line, field, value,
                     ', '.join(gpu_models.MODEL_NAMES)))
    return gpu_models.MODEL_NAMES.index(value)


def read_fleet(path):
    """Read the GPU nodes of a fleet file.

    Nodes without GPUs are left out, because the replay covers GPU nodes
    only; their number is kept in :attr:`Fleet.skipped_cpu_nodes`.

    :raises TraceError: naming file, line and field of the first invalid
        value.
    """
    label, rows = _rows(path, FLEET_COLUMNS)

    hosts, cpu, memory, gpus, models = [], [], [], [], []
    seen = {}
    skipped = 0
    for line, row in rows:
        host = _field(label, line, row, 'sn')
        if not host:
            raise TraceError('%s: line %d: field sn: the node name is empty.'
                             % (label, line))
        if host in seen:
            raise TraceError(
                '%s: line %d: field sn: duplicate node name %r, already on '
                'line %d.' % (label, line, host, seen[host]))
        seen[host] = line
        node_cpu = _count(label, line, row, 'cpu_milli')
        node_memory = _count(label, line, row, 'memory_mib')
        node_gpus = _count(label, line, row, 'gpu',
                           maximum=gpu_models.MAX_GPUS_PER_NODE)
        model = _field(label, line, row, 'model')

        if node_gpus == 0:
            skipped += 1
            continue

        for field, value in (('cpu_milli', node_cpu),
                             ('memory_mib', node_memory)):
            if not value:
                raise TraceError(
                    '%s: line %d: field %s: invalid value 0 for a node with '
                    'GPUs: expected a capacity above 0.'
                    % (label, line, field))

        models.append(_model(label, line, 'model', model))
        hosts.append(host)
        cpu.append(node_cpu)
        memory.append(node_memory)
        gpus.append(node_gpus)

    if not hosts:
        raise TraceError('%s: no node has a GPU: expected at least one row '
                         'with gpu above 0.' % label)

    return Fleet(
        name=os.path.splitext(label)[0],
        hosts=hosts,
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        gpu_count=np.array(gpus, dtype=np.int64),
        model=np.array(models, dtype=np.int64),
        skipped_cpu_nodes=skipped)


def _spec_mask(label, line, value):
    if not value:
        return 0

    mask = 0
    for model in value.split('|'):
        mask |= 1 << _model(label, line, 'gpu_spec', model.strip())
    return mask


def read_workload(path):
    """Read the tasks of a workload file in file order.

    :raises TraceError: naming file, line and field of the first invalid
        value.
    """
    label, rows = _rows(path, WORKLOAD_COLUMNS)

    names, cpu, memory, counts, shares, masks = [], [], [], [], [], []
    for line, row in rows:
        num_gpu = _count(label, line, row, 'num_gpu',
                         maximum=gpu_models.MAX_GPUS_PER_NODE)
        gpu_milli = _count(label, line, row, 'gpu_milli',
                           maximum=WHOLE_GPU_MILLI)

        if num_gpu and not gpu_milli:
            raise TraceError(
                '%s: line %d: field gpu_milli: invalid value 0 for a task '
                'with num_gpu %d: expected 1 to 1000.'
                % (label, line, num_gpu))
        if num_gpu > 1 and gpu_milli < WHOLE_GPU_MILLI:
            raise TraceError(
                '%s: line %d: field gpu_milli: invalid value %d for a task '
                'with num_gpu %d: a share below 1000 needs num_gpu 1.'
                % (label, line, gpu_milli, num_gpu))
        if not num_gpu:
            gpu_milli = 0

        names.append(_field(label, line, row, 'name'))
        cpu.append(_count(label, line, row, 'cpu_milli'))
        memory.append(_count(label, line, row, 'memory_mib'))
        counts.append(num_gpu)
        shares.append(gpu_milli)
        mask = _spec_mask(label, line, (row.get('gpu_spec') or '').strip())
        masks.append(mask if num_gpu else 0)

    return Workload(
        name=os.path.splitext(label)[0],
        names=names,
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        num_gpu=np.array(counts, dtype=np.int64),
        gpu_milli=np.array(shares, dtype=np.int64),
        spec_mask=np.array(masks, dtype=np.int64))
