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

import threading

from sovereign_ai.gpu import fragmentation as frag
from sovereign_ai.tests import base

Gpu = frag.Gpu
Shape = frag.RequestShape


def hgx(used=(), nvlink='nv0', numa_split=4, switch_size=2):
    """Return an 8-GPU NVLink host; ``used`` lists the busy GPU indices."""
    return [Gpu(0 if index in used else 1000,
                numa_node=index // numa_split,
                pcie_switch='%s-sw%d' % (nvlink, index // switch_size),
                nvlink_domain=nvlink)
            for index in range(8)]


def pairs(free):
    """Return PCIe cards bridged in NVLink pairs, one per free value."""
    return [Gpu(milli, numa_node=index // 4,
                pcie_switch='sw%d' % (index // 2),
                nvlink_domain='pair%d' % (index // 2))
            for index, milli in enumerate(free)]


def mix_of(*entries):
    return frag.RequestMix(initial=dict(entries))


class TestGpu(base.TestCase):

    def test_defaults(self):
        gpu = Gpu(1000)

        self.assertIsNone(gpu.numa_node)
        self.assertIsNone(gpu.pcie_switch)
        self.assertIsNone(gpu.nvlink_domain)

    def test_invalid_free_milli(self):
        for value in (-1, 1001, 0.5, '1000', True, None):
            error = self.assertRaises(ValueError, Gpu, value)
            self.assertIn(repr(value), str(error))


class TestRequestShape(base.TestCase):

    def test_defaults(self):
        shape = Shape(2)

        self.assertEqual(1000, shape.gpu_milli)
        self.assertEqual('none', shape.affinity)
        self.assertTrue(shape.is_whole)

    def test_share_of_one_gpu(self):
        self.assertFalse(Shape(1, 250).is_whole)

    def test_share_of_many_gpus(self):
        error = self.assertRaises(ValueError, Shape, 2, 500)

        self.assertIn('gpu_count 1', str(error))

    def test_invalid_count(self):
        for value in (0, -1, 1.0, True, '2'):
            error = self.assertRaises(ValueError, Shape, value)
            self.assertIn(repr(value), str(error))

    def test_invalid_milli(self):
        for value in (0, 1001, 500.0):
            error = self.assertRaises(ValueError, Shape, 1, value)
            self.assertIn(repr(value), str(error))

    def test_invalid_affinity(self):
        error = self.assertRaises(ValueError, Shape, 2, 1000, 'socket')

        self.assertIn("'socket'", str(error))
        self.assertIn('none, numa, pcie_switch, nvlink', str(error))

    def test_str(self):
        self.assertEqual('8@nvlink', str(Shape(8, affinity='nvlink')))
        self.assertEqual('0.25', str(Shape(1, 250)))
        self.assertEqual('2', str(Shape(2)))


class TestChooseGpus(base.TestCase):

    def test_fullest_nvlink_domain(self):
        gpus = hgx(nvlink='a') + hgx(used=(0, 1, 2, 3, 4), nvlink='b')

        self.assertEqual((13,), frag.choose_gpus(gpus, Shape(1)))

    def test_fullest_switch_inside_domain(self):
        # GPU 1 shares its switch with the busy GPU 0, so taking it keeps
        # every other switch pair whole.
        gpus = hgx(used=(0,))

        self.assertEqual((1,), frag.choose_gpus(gpus, Shape(1)))

    def test_pair_on_one_switch(self):
        gpus = hgx(used=(0, 2))

        self.assertEqual(
            (4, 5), frag.choose_gpus(gpus, Shape(2, affinity='pcie_switch')))

    def test_whole_pair_without_affinity(self):
        # Without affinity the pair still comes from one NVLink pair: the
        # one already partly used leaves no room, so pair1 is the fullest.
        gpus = pairs([1000, 0, 1000, 1000, 1000, 1000])

        self.assertEqual((2, 3), frag.choose_gpus(gpus, Shape(2)))

    def test_nvlink_eight(self):
        gpus = hgx(used=(3,), nvlink='a') + hgx(nvlink='b')

        self.assertEqual(
            tuple(range(8, 16)),
            frag.choose_gpus(gpus, Shape(8, affinity='nvlink')))

    def test_numa_affinity(self):
        gpus = hgx(used=(0,))

        self.assertEqual(
            (1, 2, 3), frag.choose_gpus(gpus, Shape(3, affinity='numa')))

    def test_no_fit(self):
        gpus = hgx(used=(0,))

        self.assertIsNone(frag.choose_gpus(gpus, Shape(8)))
        self.assertIsNone(frag.choose_gpus(gpus, Shape(5, affinity='numa')))
        self.assertIsNone(frag.choose_gpus([], Shape(1)))

    def test_share_on_fullest_gpu(self):
        gpus = [Gpu(1000), Gpu(600), Gpu(300), Gpu(250)]

        self.assertEqual((2,), frag.choose_gpus(gpus, Shape(1, 300)))
        self.assertEqual((1,), frag.choose_gpus(gpus, Shape(1, 500)))
        self.assertIsNone(frag.choose_gpus(gpus[1:], Shape(1, 700)))

    def test_unknown_domain_alone(self):
        # GPU 0 has no NUMA node: it can serve one GPU, never a group.
        gpus = [Gpu(1000), Gpu(1000, numa_node=0), Gpu(1000, numa_node=0)]
        numa_pair = Shape(2, affinity='numa')

        self.assertEqual((1, 2), frag.choose_gpus(gpus, numa_pair))
        self.assertIsNone(frag.choose_gpus(gpus[:2], numa_pair))
        self.assertEqual(
            (0,), frag.choose_gpus(gpus[:1], Shape(1, affinity='numa')))

    def test_deterministic_ties(self):
        gpus = pairs([1000] * 4)

        self.assertEqual((0,), frag.choose_gpus(gpus, Shape(1)))
        self.assertEqual((0, 1), frag.choose_gpus(gpus, Shape(2)))


class TestShapeFragmentation(base.TestCase):

    def test_share(self):
        gpus = [Gpu(1000), Gpu(400), Gpu(200), Gpu(0)]

        self.assertEqual(600, frag.shape_fragmentation(gpus, Shape(1, 500)))
        self.assertEqual(0, frag.shape_fragmentation(gpus, Shape(1, 100)))

    def test_partly_used_gpus(self):
        gpus = [Gpu(1000), Gpu(1000), Gpu(400)]

        self.assertEqual(400, frag.shape_fragmentation(gpus, Shape(2)))

    def test_no_fit_fragments_all(self):
        gpus = [Gpu(1000), Gpu(1000), Gpu(400)]

        self.assertEqual(2400, frag.shape_fragmentation(gpus, Shape(3)))

    def test_small_domains(self):
        # Three NVLink pairs with one GPU busy: the lone free GPU of pair0
        # cannot serve a pair.
        gpus = pairs([1000, 0, 1000, 1000, 1000, 1000])
        nvlink_pair = Shape(2, affinity='nvlink')

        self.assertEqual(1000, frag.shape_fragmentation(gpus, nvlink_pair))
        self.assertEqual(0, frag.shape_fragmentation(gpus, Shape(2)))

    def test_unknown_domain(self):
        gpus = [Gpu(1000), Gpu(1000, pcie_switch='sw0'),
                Gpu(1000, pcie_switch='sw0')]
        switch_pair = Shape(2, affinity='pcie_switch')

        self.assertEqual(1000, frag.shape_fragmentation(gpus, switch_pair))


class TestFragmentation(base.TestCase):

    def test_expected_value(self):
        gpus = [Gpu(1000), Gpu(1000), Gpu(400)]
        mix = mix_of((Shape(1), 3), (Shape(2), 1))

        # One GPU: 400 fragmented; two GPUs: 400 fragmented; three: none
        # of that mix. The 400 milli-GPU remnant is lost for both shapes.
        self.assertAlmostEqual(400.0, frag.fragmentation(gpus, mix))

        mix = mix_of((Shape(1), 1), (Shape(4), 1))
        self.assertAlmostEqual(
            0.5 * 400 + 0.5 * 2400, frag.fragmentation(gpus, mix))

    def test_empty_mix(self):
        self.assertEqual(0.0, frag.fragmentation(hgx(), frag.RequestMix()))

    def test_distribution_matches_mix(self):
        gpus = pairs([1000, 0, 1000, 500])
        mix = mix_of((Shape(1), 1), (Shape(2, affinity='nvlink'), 1))

        self.assertEqual(
            frag.fragmentation(gpus, mix),
            frag.expected_fragmentation(gpus, mix.distribution()))


class TestFragmentationIncrease(base.TestCase):

    def test_keeps_nvlink_domain_whole(self):
        # Two HGX hosts, one untouched, one with a GPU in use. Under a mix
        # with 8-GPU NVLink requests, a single GPU costs less on the host
        # that is already broken up: there it even takes a GPU that the
        # 8-GPU shape could not use.
        mix = mix_of((Shape(1), 0.6), (Shape(8, affinity='nvlink'), 0.4))
        shape = Shape(1)

        whole = frag.fragmentation_increase(hgx(), shape, mix)
        broken = frag.fragmentation_increase(hgx(used=(0,)), shape, mix)

        self.assertAlmostEqual(0.4 * 7000, whole)
        self.assertAlmostEqual(-0.4 * 1000, broken)
        self.assertLess(broken, whole)

    def test_does_not_fit(self):
        mix = mix_of((Shape(1), 1))

        self.assertIsNone(
            frag.fragmentation_increase(hgx(used=(0,)), Shape(8), mix))

    def test_share_prefers_used_gpu(self):
        gpus = [Gpu(1000), Gpu(500)]
        mix = mix_of((Shape(1), 1), (Shape(1, 500), 1))

        after = frag.place(gpus, (1,), Shape(1, 500))
        self.assertEqual([Gpu(1000), Gpu(0)], after)
        self.assertAlmostEqual(
            -250.0, frag.fragmentation_increase(gpus, Shape(1, 500), mix))

    def test_expected_increase_before(self):
        gpus = hgx(used=(0,))
        distribution = mix_of((Shape(2, affinity='pcie_switch'), 1)) \
            .distribution()
        before = frag.expected_fragmentation(gpus, distribution)

        self.assertEqual(
            frag.expected_increase(gpus, Shape(1), distribution),
            frag.expected_increase(gpus, Shape(1), distribution, before))


class TestExpectedIncreases(base.TestCase):

    def test_matches_single(self):
        gpus = hgx(used=(0, 5))
        distribution = mix_of(
            (Shape(1), 2), (Shape(2, affinity='pcie_switch'), 1),
            (Shape(4, affinity='numa'), 1)).distribution()
        # GPU 1 sits alone on its switch; GPU 2 breaks up a free pair.
        index_sets = [(1,), (2,), None, (6, 7), (1, 2)]

        increases = frag.expected_increases(
            gpus, Shape(1), distribution, index_sets)

        self.assertIsNone(increases[2])
        for indices, increase in zip(index_sets, increases):
            if indices is None:
                continue
            shape = Shape(len(indices))
            self.assertEqual(
                frag.expected_increase(gpus, shape, distribution,
                                       indices=indices),
                frag.expected_increases(gpus, shape, distribution,
                                        [indices])[0])
        self.assertEqual(
            frag.expected_increase(gpus, Shape(1), distribution,
                                   indices=(2,)), increases[1])
        self.assertLess(increases[0], increases[1])

    def test_empty(self):
        self.assertEqual(
            [], frag.expected_increases(hgx(), Shape(1), [], []))


class TestRequestMix(base.TestCase):

    def test_observe(self):
        mix = frag.RequestMix()
        mix.observe(Shape(1))
        mix.observe(Shape(1))
        mix.observe(Shape(8, affinity='nvlink'))

        distribution = dict(mix.distribution())
        self.assertEqual(2, len(distribution))
        self.assertAlmostEqual(1.0, sum(distribution.values()))
        self.assertGreater(distribution[Shape(1)], 0.66)

    def test_half_life(self):
        mix = frag.RequestMix(half_life=10)
        mix.observe(Shape(8))
        for _ in range(10):
            mix.observe(Shape(1))

        weights = mix.weights()
        self.assertAlmostEqual(0.5, weights[Shape(8)])

    def test_initial_scaled(self):
        # The initial mix weighs as much as a long history, so after one
        # half life it has half its weight and the new shape the rest.
        mix = frag.RequestMix(
            half_life=50, initial={Shape(1): 1.0, Shape(2): 3.0})
        self.assertAlmostEqual(0.25, dict(mix.distribution())[Shape(1)])

        for _ in range(50):
            mix.observe(Shape(4))
        distribution = dict(mix.distribution())
        self.assertAlmostEqual(0.5, distribution[Shape(4)], places=2)
        self.assertAlmostEqual(0.125, distribution[Shape(1)], places=2)

    def test_distribution_sorted(self):
        mix = mix_of((Shape(8, affinity='nvlink'), 1), (Shape(8), 1),
                     (Shape(1), 1), (Shape(1, 500), 1))

        self.assertEqual(
            [Shape(1, 500), Shape(1), Shape(8), Shape(8, affinity='nvlink')],
            [shape for shape, _p in mix.distribution()])

    def test_prunes_faded_shapes(self):
        mix = frag.RequestMix(half_life=1)
        mix.observe(Shape(8))
        for _ in range(30):
            mix.observe(Shape(1))

        self.assertEqual([Shape(1)], list(mix.weights()))

    def test_invalid_half_life(self):
        for value in (0, -1, float('inf'), 'x', None):
            error = self.assertRaises(
                ValueError, frag.RequestMix, half_life=value)
            self.assertIn(repr(value), str(error))

    def test_invalid_initial(self):
        self.assertRaises(ValueError, frag.RequestMix, initial={1: 1.0})
        error = self.assertRaises(
            ValueError, frag.RequestMix, initial={Shape(1): -1})
        self.assertIn('-1', str(error))

    def test_observe_invalid(self):
        self.assertRaises(ValueError, frag.RequestMix().observe, (1, 1000))

    def test_threads(self):
        mix = frag.RequestMix(half_life=1e12)

        def observe():
            for _ in range(200):
                mix.observe(Shape(1))

        threads = [threading.Thread(target=observe) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertAlmostEqual(800.0, mix.weights()[Shape(1)], places=3)


class TestParseMix(base.TestCase):

    def test_counts(self):
        self.assertEqual(
            {Shape(1): 0.5, Shape(2): 0.2, Shape(4): 0.2, Shape(8): 0.1},
            frag.parse_mix('1:0.5,2:0.2,4:0.2,8:0.1'))

    def test_affinity_and_share(self):
        self.assertEqual(
            {Shape(8, affinity='nvlink'): 1.0, Shape(1, 500): 2.0,
             Shape(2, affinity='pcie_switch'): 3.0},
            frag.parse_mix(' 8@nvlink:1, 0.5:2 ,2@pcie_switch:3,'))

    def test_same_shape_adds(self):
        self.assertEqual({Shape(1): 3.0}, frag.parse_mix('1:1,1@none:2'))

    def test_invalid(self):
        cases = {
            '': 'at least one entry',
            '1:0': 'at least one entry',
            '1': "'1'",
            ':1': "':1'",
            'x:1': "'x'",
            '1.5:1': "'1.5'",
            '0:1': "'0'",
            'inf:1': "'inf'",
            '1:-1': "'-1'",
            '1:nan': "'nan'",
            '2@socket:1': "'socket'",
        }
        for text, expected in cases.items():
            error = self.assertRaises(ValueError, frag.parse_mix, text)
            self.assertIn(expected, str(error))
