"""``policy="text4seg"`` on each accumulator against the scripts' own arithmetic (tests/text4seg_scripts.py)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from maskcodec.metrics import IoUAccumulator, MeanIoU, RECAccuracy
from maskcodec._errors import InputError

torch = pytest.importorskip("torch")
import text4seg_scripts as scripts  # noqa: E402


def _blob(rng, h, w, p_empty=0.15):
    m = np.zeros((h, w), np.uint8)
    if rng.random() < p_empty:
        return m
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    m[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = 1
    if rng.random() < 0.5:
        m[rng.random((h, w)) < 0.05] ^= 1
    return m


def _split(seed, n_images=40):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        images.append([(_blob(rng, h, w), _blob(rng, h, w)) for _ in range(int(rng.integers(1, 5)))])
    return images


@pytest.mark.parametrize("seed", range(6))
def test_ciou_giou_match_eval_refer_seg_to_the_bit(seed):
    images = _split(seed)
    ciou, giou = scripts.eval_refer_seg(images)
    acc = IoUAccumulator(policy="text4seg")
    for k, samples in enumerate(images):
        for pred, gt in samples:
            acc.add(pred, gt, image=k)
    assert acc.ciou == float(ciou) and acc.giou == float(giou)
    assert f"{acc.ciou:.4f}" == f"{ciou:.4f}" and f"{acc.giou:.4f}" == f"{giou:.4f}"
    # Sharded and merged (also through state() and pickle) gives the same bits.
    a, b = IoUAccumulator(policy="text4seg"), IoUAccumulator(policy="text4seg")
    for k, samples in enumerate(images):
        for pred, gt in samples:
            (a if k < len(images) // 2 else b).add(pred, gt, image=k)
    merged = IoUAccumulator.from_state(a.state()).merge(pickle.loads(pickle.dumps(b)))
    assert (merged.ciou, merged.giou) == (acc.ciou, acc.giou)
    # Image keys of any JSON-able shape survive a JSON round trip of the state.
    keyed = IoUAccumulator(policy="text4seg")
    for k, samples in enumerate(images):
        for pred, gt in samples:
            keyed.add(pred, gt, image=("coco", k))
    back = IoUAccumulator.from_state(json.loads(json.dumps(keyed.state())))
    assert (back.ciou, back.giou) == (acc.ciou, acc.giou) == (keyed.ciou, keyed.giou)
    # The exact policy differs from the script only by rounding here.
    exact = IoUAccumulator()
    for samples in images:
        for pred, gt in samples:
            exact.add(pred, gt)
    assert abs(exact.ciou - acc.ciou) < 1e-5 and abs(exact.giou - acc.giou) < 1e-4


def test_refer_seg_float32_sums_and_the_epsilon_are_visible():
    # I / (U + 1e-5) in float32: 1 pixel of 3 is not 1/3, and float32 sums drift from exact ones.
    acc, exact = IoUAccumulator(policy="text4seg"), IoUAccumulator()
    p = np.array([[1, 1, 0]], np.uint8)
    t = np.array([[0, 1, 1]], np.uint8)
    acc.add(p, t)
    exact.add(p, t)
    assert exact.giou == 1 / 3
    assert acc.giou == float(np.float32(1) / (np.float32(3) + np.float32(1e-5))) != 1 / 3
    # Empty target and prediction: 0 / (0 + 1e-5) + 1.0 = 1.0, as no_target="one".
    e = np.zeros((2, 2), np.uint8)
    acc2 = IoUAccumulator(policy="text4seg")
    acc2.add(e, e)
    assert acc2.giou == 1.0 and acc2.n_acc == 1.0
    with pytest.raises(InputError, match="no_target='one'"):
        IoUAccumulator(policy="text4seg", no_target="skip")
    with pytest.raises(InputError, match="unknown policy 'paper'"):
        IoUAccumulator(policy="paper")
    with pytest.raises(InputError, match="cannot merge"):
        acc.merge(exact)


@pytest.mark.parametrize("seed", range(6))
def test_rec_accuracy_matches_eval_refer_comprehen(seed):
    images = _split(seed)
    expected, hits = scripts.eval_refer_comprehen(images)
    rec = RECAccuracy(policy="text4seg")
    got = [rec.add(pred, gt) for samples in images for pred, gt in samples]
    assert got == hits and rec.accuracy == expected and rec.skipped == 0
    merged = RECAccuracy.from_state(rec.state()).merge(RECAccuracy(policy="text4seg"))
    assert merged.accuracy == expected


def test_rec_empty_target_is_a_miss_only_under_text4seg():
    t = np.zeros((8, 8), bool)
    p = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    exact, ref = RECAccuracy(), RECAccuracy(policy="text4seg")
    for acc in (exact, ref):
        acc.add(full, full)
        acc.add(p, t)
    assert (exact.accuracy, exact.count, exact.skipped) == (1.0, 1, 1)
    assert (ref.accuracy, ref.count, ref.skipped) == (0.5, 2, 0)
    # A one-pixel-wide box has area 0: 0 / 0 is nan, a miss, as in the script.
    line = np.zeros((8, 8), bool)
    line[2:6, 3] = True
    assert RECAccuracy(policy="text4seg").add(line, line) is False
    assert scripts.eval_refer_comprehen([[(line, line)]])[1] == [False]
    with pytest.raises(InputError, match="convention='text4seg'"):
        RECAccuracy(policy="text4seg", convention="coco")


def _label_maps(seed, k, n=25):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        h, w = int(rng.integers(1, 70)), int(rng.integers(1, 70))
        gt = rng.integers(0, min(k, 6), size=(h, w)).astype(np.uint8)
        gt[rng.random((h, w)) < 0.1] = 255  # ignore pixels
        pred = np.where(rng.random((h, w)) < 0.7, gt, rng.integers(0, k, size=(h, w))).astype(np.uint8)
        pred[pred == 255] = 0
        pairs.append((pred, gt))
    return pairs


@pytest.mark.parametrize("k", [21, 60, 151])
@pytest.mark.parametrize("seed", range(3))
def test_miou_matches_eval_semantic_seg_to_the_bit(k, seed):
    pairs = _label_maps(seed, k)
    expected = scripts.eval_semantic_seg(pairs, k)
    m = MeanIoU(k, policy="text4seg")
    for pred, gt in pairs:
        m.add(pred, gt)
    assert m.miou == float(expected)
    # Absent classes count 0 in the mean over all K classes; the exact policy leaves them out.
    exact = MeanIoU(k)
    for pred, gt in pairs:
        exact.add(np.where(gt == 255, 0, pred), gt)
    assert m.miou < exact.miou
    half = MeanIoU(k, policy="text4seg")
    rest = MeanIoU(k, policy="text4seg")
    for i, (pred, gt) in enumerate(pairs):
        (half if i < 10 else rest).add(pred, gt)
    assert MeanIoU.from_state(half.state()).merge(rest).miou == m.miou


def test_miou_text4seg_zeroes_the_prediction_on_target_0_and_keeps_255_in_its_area():
    # gt 0 pixels: the prediction becomes 0 there; gt 255 pixels: out of the target's counts (histc
    # range 0..K-1) but the prediction there still counts in its class's area.
    pred = np.array([[1, 2, 1, 1]], np.uint8)
    gt = np.array([[0, 0, 1, 255]], np.uint8)
    m = MeanIoU(3, policy="text4seg")
    m.add(pred, gt)
    # class 0: I=2 (both gt-0 pixels), U=2; class 1: I=1, U=2 (pred at the 255 pixel); class 2: 0/0 -> 0
    np.testing.assert_array_equal(m.per_class(), np.array([1.0, 0.5, 0.0], np.float32))
    assert m.miou == float(np.mean(np.array([1.0, 0.5, 0.0], np.float32)))
    assert m.miou == float(scripts.eval_semantic_seg([(pred, gt)], 3))
    assert math.isnan(MeanIoU(3, policy="text4seg").miou)
