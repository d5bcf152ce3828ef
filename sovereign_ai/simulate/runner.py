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

"""Run every policy with every seed and summarise the runs."""

import concurrent.futures
import dataclasses

import numpy as np

from sovereign_ai.gpu import topology
from sovereign_ai.simulate import protocol
from sovereign_ai.simulate import reference

POLICY_NAMES = ('nova-default', 'sovereign', 'best-fit', 'fgd')
ENGINE_NAMES = ('fast', 'nova')
FIRST_SEED = 42


def engine_class(name):
    """Return the engine class of ``name``; the nova one imports Nova."""
    if name == 'fast':
        from sovereign_ai.simulate import fast
        return fast.FastEngine

    from sovereign_ai.simulate import nova_engine
    return nova_engine.NovaEngine


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: a policy, a seed and everything they replay."""

    fleet: object
    workload: object
    policy: str
    seed: int
    engine: str = 'fast'
    tune: float = 1.3
    affinity: str = topology.AFFINITY_NONE


def run_one(spec):
    """Tune the workload for the seed and replay it; return a RunResult."""
    tuned = protocol.tune(spec.workload, spec.fleet.gpu_capacity_milli,
                          spec.seed, spec.tune)
    mix = reference.task_mix(tuned)
    engine = engine_class(spec.engine)(spec.fleet, spec.policy, mix,
                                       spec.affinity)
    result = protocol.replay(engine, spec.fleet, tuned, spec.seed,
                             spec.policy, spec.affinity)

    # The caller needs the summary figures only, so the per-task arrays
    # do not travel back from a worker process.
    result.nodes = None
    result.gpus = None
    return result


def run_all(specs, jobs=1, on_done=None):
    """Run ``specs``, in ``jobs`` processes when above 1.

    :param on_done: a callable taking the number of finished runs.
    :returns: the RunResult of each spec, in the order of ``specs``.
    """
    results = [None] * len(specs)
    if jobs <= 1 or len(specs) <= 1:
        for index, spec in enumerate(specs):
            results[index] = run_one(spec)
            if on_done:
                on_done(index + 1)
        return results

    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(specs))) as pool:
        futures = {pool.submit(run_one, spec): index
                   for index, spec in enumerate(specs)}
        done = 0
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            done += 1
            if on_done:
                on_done(done)
    return results


def _mean_sd(values):
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {'mean': round(float(values.mean()), 3), 'sd': round(sd, 3)}


def summarise(policy, trace_name, results):
    """Return the JSON result item of one policy over its seeds."""
    curves = np.array([result.unallocated_pct for result in results])
    return {
        'policy': policy,
        'trace': trace_name,
        'seeds': len(results),
        'unallocated_gpu_pct_at_100': _mean_sd(
            [result.unallocated_at(100) for result in results]),
        'unallocated_gpu_pct_at_130': _mean_sd(
            [result.unallocated_at(130) for result in results]),
        'affinity_violations': _mean_sd(
            [result.affinity_violations for result in results]),
        'tasks_failed': _mean_sd(
            [result.tasks_failed for result in results]),
        'unallocated_gpu_pct_by_demand': [
            round(float(value), 3) for value in curves.mean(axis=0)],
    }
