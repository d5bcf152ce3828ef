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

"""GPU fragmentation of a host under the typical request mix.

The measure follows Weng et al., "Beware of Fragmentation: Scheduling GPU-
Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC '23. For
one request shape, the free GPU capacity that the shape cannot use is
fragmented. The fragmentation of a host is the expected value of that over
the shapes of the request mix, weighted by their popularity. A scheduler
that places each request where this value grows least keeps the remaining
free GPUs usable for the requests that typically arrive.

This module extends the measure with topology. A shape with affinity level
``numa``, ``pcie_switch`` or ``nvlink`` needs all its GPUs inside one domain
of that level, so whole-free GPUs in a domain with fewer free GPUs than the
shape needs are fragmented for that shape.

Capacity is counted in milli-GPUs: 1000 is one whole GPU.

This module imports nothing from Nova, so the scheduler weigher and the
simulator compute the same numbers from the same functions.
"""

import collections
import dataclasses
import functools
import math
import threading

from sovereign_ai.gpu import topology

WHOLE_GPU_MILLI = 1000

# The levels that group GPUs below the host, used to keep domains whole.
_SUB_LEVELS = tuple(
    level for level in topology.AFFINITY_LEVELS
    if level != topology.AFFINITY_NONE)

# Weights below this share of the total are dropped from a RequestMix, so
# shapes that stopped arriving do not slow down every later weighing.
_PRUNE_SHARE = 1e-6


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One GPU of a host: its free capacity and its topology domains.

    A domain attribute left as None means the domain is unknown. Such a GPU
    shares no domain at that level with any other GPU.
    """

    free_milli: int
    numa_node: int | None = None
    pcie_switch: str | None = None
    nvlink_domain: str | None = None

    def __post_init__(self):
        if (isinstance(self.free_milli, bool)
                or not isinstance(self.free_milli, int)
                or not 0 <= self.free_milli <= WHOLE_GPU_MILLI):
            raise ValueError(
                'Invalid free_milli %r: expected an integer from 0 to %d.'
                % (self.free_milli, WHOLE_GPU_MILLI))


@dataclasses.dataclass(frozen=True)
class RequestShape:
    """The GPUs that one request takes.

    ``gpu_milli`` below 1000 describes a share of a single GPU, so it is
    allowed only with ``gpu_count`` 1.
    """

    gpu_count: int
    gpu_milli: int = WHOLE_GPU_MILLI
    affinity: str = topology.AFFINITY_NONE

    def __post_init__(self):
        if (isinstance(self.gpu_count, bool)
                or not isinstance(self.gpu_count, int)
                or self.gpu_count < 1):
            raise ValueError(
                'Invalid gpu_count %r: expected an integer of 1 or more.'
                % (self.gpu_count,))

        if (isinstance(self.gpu_milli, bool)
                or not isinstance(self.gpu_milli, int)
                or not 1 <= self.gpu_milli <= WHOLE_GPU_MILLI):
            raise ValueError(
                'Invalid gpu_milli %r: expected an integer from 1 to %d.'
                % (self.gpu_milli, WHOLE_GPU_MILLI))

        if self.gpu_milli < WHOLE_GPU_MILLI and self.gpu_count != 1:
            raise ValueError(
                'Invalid shape: a share of %d milli-GPU needs gpu_count 1, '
                'not %d.' % (self.gpu_milli, self.gpu_count))

        if self.affinity not in topology.AFFINITY_LEVELS:
            raise ValueError(
                'Invalid affinity %r: expected one of %s.'
                % (self.affinity, ', '.join(topology.AFFINITY_LEVELS)))

    @property
    def is_whole(self):
        """Whether the shape takes whole GPUs."""
        return self.gpu_milli == WHOLE_GPU_MILLI

    def sort_key(self):
        """Return a key that orders shapes by size, then affinity."""
        return (self.gpu_count, self.gpu_milli,
                topology.AFFINITY_LEVELS.index(self.affinity))

    def __str__(self):
        if self.is_whole:
            text = str(self.gpu_count)
        else:
            text = format(self.gpu_milli / WHOLE_GPU_MILLI, 'g')
        if self.affinity != topology.AFFINITY_NONE:
            text += '@' + self.affinity
        return text


class RequestMix:
    """Decayed popularity of request shapes, learned online.

    Every observation adds 1 to the weight of its shape after all weights
    are multiplied by ``2 ** (-1 / half_life)``. An observation therefore
    weighs half as much after ``half_life`` further observations.

    ``initial`` gives relative weights to start from, such as an operator's
    estimate. They are scaled to the total weight that a long run of
    observations converges to, so the initial mix counts as much as a full
    history of observations and fades with the same half life.

    The methods are safe to call from several threads.
    """

    def __init__(self, half_life=1000.0, initial=None):
        if (isinstance(half_life, bool)
                or not isinstance(half_life, (int, float))
                or not math.isfinite(half_life) or half_life <= 0):
            raise ValueError(
                'Invalid half_life %r: expected a positive number of '
                'observations.' % (half_life,))

        self._decay = 2.0 ** (-1.0 / half_life)
        self._weights = {}
        self._lock = threading.Lock()

        if initial:
            self._weights = self._scaled_initial(initial)

    def _scaled_initial(self, initial):
        for shape, weight in initial.items():
            if not isinstance(shape, RequestShape):
                raise ValueError(
                    'Invalid initial mix key %r: expected a RequestShape.'
                    % (shape,))
            if (isinstance(weight, bool)
                    or not isinstance(weight, (int, float))
                    or not math.isfinite(weight) or weight < 0):
                raise ValueError(
                    'Invalid initial weight %r for shape %s: expected a '
                    'number of 0 or more.' % (weight, shape))

        total = float(sum(initial.values()))
        if total <= 0:
            return {}

        steady_total = 1.0 / (1.0 - self._decay)
        return {shape: weight * steady_total / total
                for shape, weight in initial.items() if weight > 0}

    def observe(self, shape):
        """Count one request of ``shape``."""
        if not isinstance(shape, RequestShape):
            raise ValueError(
                'Invalid shape %r: expected a RequestShape.' % (shape,))

        with self._lock:
            decayed = {}
            floor = (sum(self._weights.values()) + 1.0) * _PRUNE_SHARE
            for known, weight in self._weights.items():
                weight *= self._decay
                if weight >= floor:
                    decayed[known] = weight
            decayed[shape] = decayed.get(shape, 0.0) + 1.0
            self._weights = decayed

    def weights(self):
        """Return a copy of the current decayed weights by shape."""
        with self._lock:
            return dict(self._weights)

    def distribution(self):
        """Return ``(shape, probability)`` pairs summing to 1.

        The pairs are sorted by :meth:`RequestShape.sort_key`, so equal
        mixes give equal lists. An empty mix returns an empty list.
        """
        weights = self.weights()
        total = sum(weights.values())
        if total <= 0:
            return []

        return [(shape, weights[shape] / total)
                for shape in sorted(weights, key=RequestShape.sort_key)]


def parse_mix(text):
    """Parse an operator's request mix such as ``1:0.5,2:0.3,8@nvlink:0.2``.

    Each comma-separated entry is ``GPUS[@AFFINITY]:WEIGHT``. GPUS is a
    whole number of GPUs, or a fraction below 1 for a share of one GPU
    (``0.5`` is half a GPU). AFFINITY is one of the affinity levels and
    defaults to ``none``. WEIGHT is a relative popularity of 0 or more.
    Entries of the same shape add up.

    :returns: a dict of :class:`RequestShape` to weight, for the
        ``initial`` argument of :class:`RequestMix`.
    :raises ValueError: naming the entry and what is wrong with it.
    """
    mix = {}
    for entry in text.split(','):
        entry = entry.strip()
        if not entry:
            continue

        shape_text, sep, weight_text = entry.rpartition(':')
        if not sep or not shape_text:
            raise ValueError(
                'Invalid request mix entry %r: expected GPUS[@AFFINITY]:'
                'WEIGHT, for example 8@nvlink:0.1.' % entry)

        shape = _parse_shape(entry, shape_text.strip())
        weight = _parse_weight(entry, weight_text.strip())
        mix[shape] = mix.get(shape, 0.0) + weight

    if not mix or sum(mix.values()) <= 0:
        raise ValueError(
            'Invalid request mix %r: expected at least one entry with a '
            'positive weight.' % text)
    return mix


def _parse_shape(entry, text):
    count_text, _sep, affinity = text.partition('@')
    affinity = affinity.strip() or topology.AFFINITY_NONE

    try:
        gpus = float(count_text)
    except ValueError:
        gpus = math.nan

    if not math.isfinite(gpus):
        gpus = math.nan

    if gpus >= 1 and gpus == int(gpus):
        count, milli = int(gpus), WHOLE_GPU_MILLI
    elif 0 < gpus < 1:
        count, milli = 1, round(gpus * WHOLE_GPU_MILLI)
    else:
        raise ValueError(
            'Invalid GPU count %r in request mix entry %r: expected a whole '
            'number of GPUs or a fraction below 1.' % (count_text, entry))

    try:
        return RequestShape(max(count, 1), max(milli, 1), affinity)
    except ValueError as error:
        raise ValueError(
            'Invalid request mix entry %r: %s' % (entry, error)) from None


def _parse_weight(entry, text):
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan

    if not math.isfinite(weight) or weight < 0:
        raise ValueError(
            'Invalid weight %r in request mix entry %r: expected a number '
            'of 0 or more.' % (text, entry))
    return weight


@functools.lru_cache(maxsize=4096, typed=True)
def _cached_domain(numa_node, pcie_switch, nvlink_domain, level):
    return topology.domain_of({
        'numa_node': numa_node,
        topology.DEVICE_SPEC_TAG_BY_LEVEL[topology.AFFINITY_PCIE_SWITCH]:
            pcie_switch,
        topology.DEVICE_SPEC_TAG_BY_LEVEL[topology.AFFINITY_NVLINK]:
            nvlink_domain,
    }, level)


def _domain_key(gpu, level):
    try:
        return _cached_domain(
            gpu.numa_node, gpu.pcie_switch, gpu.nvlink_domain, level)
    except TypeError:
        # An unhashable attribute (a list, for example) names no domain.
        return None


def _domains(gpus, level):
    # A GPU whose domain is unknown gets a domain of its own, keyed by its
    # index, so it never joins another GPU's domain.
    keys = []
    for index, gpu in enumerate(gpus):
        key = _domain_key(gpu, level)
        keys.append(('known', key) if key is not None else ('own', index))
    return keys


class _Layout:
    """Domain keys and per-domain sums of a GPU list, computed on demand.

    Placing a request changes free capacity but no domain, so the layout
    of the GPUs after a placement shares the domain keys of the layout
    before it.
    """

    def __init__(self, gpus, shared_keys=None):
        self.gpus = gpus
        self._keys = shared_keys if shared_keys is not None else {}
        self._free = {}
        self._whole_free = {}
        self._total_free = None

    def keys(self, level):
        if level not in self._keys:
            self._keys[level] = _domains(self.gpus, level)
        return self._keys[level]

    def after(self, placed_gpus):
        """Return the layout of ``placed_gpus``, sharing the domain keys."""
        return _Layout(placed_gpus, self._keys)

    def free(self, level):
        """Return the free milli-GPUs of each domain at ``level``."""
        if level not in self._free:
            free = collections.Counter()
            for gpu, key in zip(self.gpus, self.keys(level)):
                free[key] += gpu.free_milli
            self._free[level] = free
        return self._free[level]

    def whole_free(self, level):
        """Return the number of whole-free GPUs of each domain at ``level``."""
        if level not in self._whole_free:
            self._whole_free[level] = collections.Counter(
                key for gpu, key in zip(self.gpus, self.keys(level))
                if gpu.free_milli == WHOLE_GPU_MILLI)
        return self._whole_free[level]

    def total_free(self):
        if self._total_free is None:
            self._total_free = sum(gpu.free_milli for gpu in self.gpus)
        return self._total_free


def choose_gpus(gpus, shape):
    """Return the indices of the GPUs a request of ``shape`` would take.

    Whole-GPU shapes take whole-free GPUs inside one domain of the shape's
    affinity level: the domain with the least free capacity that still has
    enough of them (best fit). Inside it, the GPUs come from the tightest
    numa, pcie_switch or nvlink domain that has them all, recursively,
    so that larger free domains stay whole. A share of one GPU goes to the
    fullest GPU that still has room, with the same tie-break.

    Ties go to the domain and GPU of the lowest index, so the result is
    deterministic.

    :returns: a sorted tuple of indices into ``gpus``, or None when the
        shape does not fit.
    """
    layout = _Layout(gpus)

    if not shape.is_whole:
        fitting = [index for index, gpu in enumerate(gpus)
                   if gpu.free_milli >= shape.gpu_milli]
        if not fitting:
            return None
        least_free = min(gpus[index].free_milli for index in fitting)
        tightest = [index for index in fitting
                    if gpus[index].free_milli == least_free]
        return tuple(_pack(layout, tightest, 1))

    whole_free = [index for index, gpu in enumerate(gpus)
                  if gpu.free_milli == WHOLE_GPU_MILLI]
    members = _group(layout, whole_free, shape.affinity)
    free = layout.free(shape.affinity)

    best = None
    for key, indices in members.items():
        if len(indices) < shape.gpu_count:
            continue
        rank = (free[key], len(indices), indices[0])
        if best is None or rank < best[0]:
            best = (rank, indices)

    if best is None:
        return None
    return tuple(sorted(_pack(layout, best[1], shape.gpu_count)))


def _group(layout, indices, level):
    keys = layout.keys(level)
    members = {}
    for index in indices:
        members.setdefault(keys[index], []).append(index)
    return members


def _pack(layout, candidates, count):
    # Narrow the candidates to the tightest domain, at any level below the
    # host, that still has `count` of them. Each step strictly shrinks
    # the candidates, so the loop ends.
    while len(candidates) > count:
        best = None
        for level_rank, level in enumerate(_SUB_LEVELS):
            free = layout.free(level)
            for key, indices in _group(layout, candidates, level).items():
                if not count <= len(indices) < len(candidates):
                    continue
                rank = (free[key], len(indices), indices[0], level_rank)
                if best is None or rank < best[0]:
                    best = (rank, indices)

        if best is None:
            break
        candidates = best[1]

    if len(candidates) == count:
        return candidates

    # No smaller domain has `count` of them, so take the GPUs that sit in
    # the fullest domains first.
    def fullness(index):
        return tuple(layout.free(level)[layout.keys(level)[index]]
                     for level in _SUB_LEVELS) + (index,)

    return sorted(candidates, key=fullness)[:count]


def shape_fragmentation(gpus, shape, layout=None):
    """Return the free milli-GPUs of ``gpus`` that ``shape`` cannot use.

    A share of one GPU cannot use a GPU with less free capacity than the
    share. A whole-GPU shape cannot use partly used GPUs, nor whole-free
    GPUs in a domain of its affinity level with fewer whole-free GPUs than
    it needs. When the shape fits nowhere, all free capacity is fragmented.
    """
    if not shape.is_whole:
        return sum(gpu.free_milli for gpu in gpus
                   if gpu.free_milli < shape.gpu_milli)

    # Free capacity minus the whole GPUs in domains that fit the shape.
    layout = layout or _Layout(gpus)
    usable = sum(count for count in layout.whole_free(shape.affinity).values()
                 if count >= shape.gpu_count)
    return layout.total_free() - usable * WHOLE_GPU_MILLI


def _expected(layout, distribution):
    return sum(
        probability * shape_fragmentation(layout.gpus, shape, layout)
        for shape, probability in distribution)


def expected_fragmentation(gpus, distribution):
    """Return the fragmentation of ``gpus`` under a mix distribution.

    :param distribution: ``(shape, probability)`` pairs, as returned by
        :meth:`RequestMix.distribution`. A caller that weighs many hosts
        for one request takes the distribution once and passes it here.
    """
    return _expected(_Layout(gpus), distribution)


def fragmentation(gpus, mix):
    """Return the expected fragmented milli-GPUs of a host under ``mix``.

    The expectation runs over the shapes of :meth:`RequestMix.distribution`,
    with :func:`shape_fragmentation` for each. An empty mix gives 0.0.
    """
    return expected_fragmentation(gpus, mix.distribution())


def place(gpus, indices, shape):
    """Return a copy of ``gpus`` with ``shape`` taken from ``indices``."""
    placed = list(gpus)
    for index in indices:
        placed[index] = dataclasses.replace(
            gpus[index], free_milli=gpus[index].free_milli - shape.gpu_milli)
    return placed


def expected_increase(gpus, shape, distribution, before=None, indices=None):
    """Return the growth of fragmentation when ``shape`` lands on ``gpus``.

    The same as :func:`fragmentation_increase` with a distribution taken
    once by the caller. ``before``, when given, is the caller's value of
    ``expected_fragmentation(gpus, distribution)``. ``indices``, when
    given, are the GPUs that the request takes, as an allocation candidate
    names them, for example. Without them, the request takes the GPUs of
    :func:`choose_gpus`.

    :returns: a float, or None when the shape does not fit.
    """
    if indices is None:
        indices = choose_gpus(gpus, shape)
    if indices is None:
        return None

    layout = _Layout(gpus)
    if before is None:
        before = _expected(layout, distribution)
    after = _expected(layout.after(place(gpus, indices, shape)),
                      distribution)
    return after - before


def expected_increases(gpus, shape, distribution, index_sets):
    """Return the growth of fragmentation for several placements.

    Each item of the result is ``expected_increase(gpus, shape,
    distribution, indices=indices)`` for the matching item of
    ``index_sets``, or None where that item is None. The placements share
    the work that does not depend on the GPUs taken, which makes scoring
    all allocation candidates of a host cheaper.
    """
    layout = _Layout(gpus)
    before = None
    increases = []
    for indices in index_sets:
        if indices is None:
            increases.append(None)
            continue

        if before is None:
            before = _expected(layout, distribution)
        after = _expected(layout.after(place(gpus, indices, shape)),
                          distribution)
        increases.append(after - before)
    return increases


def fragmentation_increase(gpus, shape, mix):
    """Return fragmentation after placing ``shape`` minus before.

    The GPUs taken are those of :func:`choose_gpus`.

    :returns: a float in milli-GPUs, or None when the shape does not fit.
    """
    return expected_increase(gpus, shape, mix.distribution())
