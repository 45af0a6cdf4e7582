"""maskcodec.metrics against independent reference computations and pycocotools."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskcodec import InputError, quantize, render
from maskcodec.metrics import (
    IoUAccumulator,
    MeanIoU,
    RECAccuracy,
    box_area,
    box_from_mask,
    box_iou,
    intersection_union,
    iou,
    oracle,
)

DATA = Path(__file__).parent / "data" / "coco_val2014_segm100.json"


@pytest.fixture(scope="module")
def coco_masks():
    anns = json.loads(DATA.read_text())
    anns = anns["annotations"] if isinstance(anns, dict) else anns
    return [mask_utils.decode(a["segmentation"]).astype(bool) for a in anns[:120]]


# ---- independent references: plain Python loops over pixels ------------------------------


def ref_iu(p, t):
    inter = union = 0
    for a, b in zip(p.ravel().tolist(), t.ravel().tolist()):
        inter += bool(a) and bool(b)
        union += bool(a) or bool(b)
    return inter, union


def ref_box_text4seg(m):
    pts = np.argwhere(m)  # (row, col) of every foreground pixel
    if not len(pts):
        return None
    return (int(pts[:, 1].min()), int(pts[:, 0].min()), int(pts[:, 1].max()), int(pts[:, 0].max()))


def ref_box_iou_text4seg(a, b):
    # written the way the Text4Seg REC evaluation reads: inclusive maxima, area (x2-x1)*(y2-y1)
    xa, ya, xb, yb = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, xb - xa) * max(0, yb - ya)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    u = area_a + area_b - inter
    return inter / u if u else 0.0


def ref_miou(preds, targets, n, ignore, background):
    inter = [0] * n
    union = [0] * n
    for p, t in zip(preds, targets):
        for a, b in zip(p.ravel().tolist(), t.ravel().tolist()):
            if b == ignore:
                continue
            for c in range(n):
                inter[c] += a == c and b == c
                union[c] += a == c or b == c
    vals = [inter[c] / union[c] for c in range(n) if union[c] and (background or c)]
    return sum(vals) / len(vals)


# ---- IoU -----------------------------------------------------------------------------------


def test_iou_matches_loop_and_pycocotools(coco_masks):
    rng = np.random.default_rng(0)
    for m in coco_masks[:40]:
        shifted = np.roll(m, int(rng.integers(-20, 20)), axis=1)
        i, u = int(np.logical_and(shifted, m).sum()), int(np.logical_or(shifted, m).sum())
        assert intersection_union(shifted, m) == (i, u)
        ours = iou(shifted, m)
        rle_p = mask_utils.encode(np.asfortranarray(shifted.astype(np.uint8)))
        rle_t = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        theirs = mask_utils.iou([rle_p], [rle_t], [0])[0, 0]
        if m.any() or shifted.any():
            assert ours == pytest.approx(theirs, abs=1e-12)


def test_iou_small_exhaustive_against_loop():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.random((5, 7)) < rng.random()
        t = rng.random((5, 7)) < rng.random()
        i, u = ref_iu(p, t)
        assert intersection_union(p, t) == (i, u)
        assert iou(p, t) == (i / u if u else 1.0)


def test_no_target_policies():
    e = np.zeros((3, 3), bool)
    f = e.copy()
    f[0, 0] = True
    assert iou(e, e) == 1.0
    assert iou(e, e, no_target="zero") == 0.0
    assert math.isnan(iou(e, e, no_target="skip"))
    for pol in ("one", "zero", "skip"):
        assert iou(f, e, no_target=pol) == 0.0  # a false positive on a no-target sample is wrong always
    acc = IoUAccumulator(no_target="skip")
    acc.add(e, e)
    acc.add(f, f)
    assert (acc.count, acc.skipped, acc.giou, acc.empty_targets) == (2, 1, 1.0, 1)
    one = IoUAccumulator()
    one.add(e, e)
    one.add(e, f)
    assert one.giou == 0.5 and one.ciou == 0.0
    assert (one.empty_targets, one.empty_correct, one.n_acc) == (1, 1, 1.0)
    one.add(f, e)  # something predicted on a no-target sample
    assert one.n_acc == 0.5 and one.summary()["n_acc"] == 0.5
    assert math.isnan(IoUAccumulator().n_acc)
    only_empty = IoUAccumulator()
    only_empty.add(e, e)
    assert only_empty.ciou == 1.0
    assert math.isnan(IoUAccumulator().ciou) and math.isnan(IoUAccumulator().giou)
    with pytest.raises(InputError, match="no_target"):
        IoUAccumulator(no_target="nan")


def test_iou_input_errors():
    with pytest.raises(InputError, match="shape"):
        iou(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(InputError, match="threshold"):
        iou(np.zeros((2, 2)), np.zeros((2, 2), bool))
    with pytest.raises(TypeError):
        iou([[1]], np.zeros((1, 1), bool))
    with pytest.raises(InputError):
        IoUAccumulator().add_counts(3, 2)


def test_accumulator_ciou_giou_against_reference(coco_masks):
    rng = np.random.default_rng(2)
    acc = IoUAccumulator()
    inters, unions, ious = [], [], []
    for m in coco_masks[:30]:
        p = np.roll(m, int(rng.integers(-15, 15)), axis=0)
        acc.add(p, m)
        i = int(np.logical_and(p, m).sum())
        u = int(np.logical_or(p, m).sum())
        inters.append(i)
        unions.append(u)
        ious.append(i / u if u else 1.0)
    assert acc.ciou == sum(inters) / sum(unions)
    assert acc.giou == pytest.approx(sum(ious) / len(ious), rel=1e-15)
    assert acc.ious == pytest.approx(ious)


def test_merge_equals_single_pass_and_pickles(coco_masks):
    rng = np.random.default_rng(3)
    pairs = [(np.roll(m, int(rng.integers(-9, 9)), axis=1), m) for m in coco_masks[:24]]
    pairs.append((np.zeros((4, 4), bool), np.zeros((4, 4), bool)))
    whole = IoUAccumulator()
    shards = [IoUAccumulator() for _ in range(3)]
    for k, (p, t) in enumerate(pairs):
        whole.add(p, t)
        shards[k % 3].add(p, t)
    # shards travel between processes as pickles or JSON states
    shards = [pickle.loads(pickle.dumps(s)) for s in shards[:2]] + [
        IoUAccumulator.from_state(json.loads(json.dumps(shards[2].state())))
    ]
    merged = shards[0].merge(shards[1], shards[2])
    assert merged.ciou == whole.ciou
    assert merged.giou == whole.giou  # fsum: exact whatever the order
    assert merged.count == whole.count and merged.empty_targets == whole.empty_targets == 1
    assert (shards[0] + shards[1] + shards[2]).state()["intersection"] == whole.intersection
    with pytest.raises(InputError, match="no_target"):
        whole.merge(IoUAccumulator(no_target="zero"))
    with pytest.raises(TypeError):
        whole.merge(RECAccuracy())


# ---- mIoU ----------------------------------------------------------------------------------


@pytest.mark.parametrize("background", [True, False])
def test_miou_against_loop(background):
    rng = np.random.default_rng(4)
    preds, targets = [], []
    m = MeanIoU(5, background=background)
    for _ in range(6):
        t = rng.integers(0, 5, (6, 9))
        t[rng.random((6, 9)) < 0.2] = 255
        p = np.where(rng.random((6, 9)) < 0.6, t, rng.integers(0, 5, (6, 9)))
        p[p == 255] = 0  # predictions never hold the ignore value
        preds.append(p)
        targets.append(t)
        m.add(p, t)
    assert m.miou == pytest.approx(ref_miou(preds, targets, 5, 255, background), rel=1e-12)
    halves = MeanIoU(5, background=background), MeanIoU(5, background=background)
    for k, (p, t) in enumerate(zip(preds, targets)):
        halves[k % 2].add(p, t)
    merged = halves[0].merge(pickle.loads(pickle.dumps(halves[1])))
    assert merged.miou == m.miou and merged.images == 6
    assert MeanIoU.from_state(json.loads(json.dumps(m.state()))).miou == m.miou


def test_miou_ignore_and_errors():
    m = MeanIoU(3, ignore_index=None)
    with pytest.raises(InputError, match="class id 255"):
        m.add(np.zeros((2, 2), int), np.full((2, 2), 255))
    m = MeanIoU(3)
    m.add(np.array([[2, 0]]), np.array([[255, 0]]))  # the prediction on an ignored pixel does not count
    assert m.per_class()[0] == 1.0 and np.isnan(m.per_class()[2])
    with pytest.raises(InputError, match="outside"):
        m.add(np.array([[7, 0]]), np.array([[1, 0]]))
    with pytest.raises(InputError):
        MeanIoU(0)
    with pytest.raises(InputError):
        m.merge(MeanIoU(4))


# ---- boxes ---------------------------------------------------------------------------------


def test_boxes_against_pycocotools_and_loop(coco_masks):
    for m in coco_masks[:60]:
        coco = box_from_mask(m, convention="coco")
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        expect = [int(v) for v in mask_utils.toBbox(rle)]
        if m.any():
            assert list(coco) == expect
            x0, y0, x1, y1 = box_from_mask(m)
            assert (x0, y0, x1 - x0 + 1, y1 - y0 + 1) == coco
            assert box_area(coco, convention="coco") == coco[2] * coco[3]
        else:
            assert coco is None and box_from_mask(m) is None
    small = np.zeros((9, 11), bool)
    small[2:5, 3] = True
    small[7, 8] = True
    assert box_from_mask(small) == ref_box_text4seg(small) == (3, 2, 8, 7)


def test_box_iou_conventions():
    rng = np.random.default_rng(5)
    for _ in range(300):
        a = sorted(rng.integers(0, 20, 2)), sorted(rng.integers(0, 20, 2))
        b = sorted(rng.integers(0, 20, 2)), sorted(rng.integers(0, 20, 2))
        ba = (a[0][0], a[1][0], a[0][1], a[1][1])
        bb = (b[0][0], b[1][0], b[0][1], b[1][1])
        assert box_iou(ba, bb) == pytest.approx(ref_box_iou_text4seg(ba, bb), rel=1e-12)
    # COCO convention agrees with pycocotools' box IoU
    for _ in range(100):
        a = rng.integers(0, 30, 4).astype(float)
        b = rng.integers(0, 30, 4).astype(float)
        a[2:] += 1
        b[2:] += 1
        theirs = mask_utils.iou([a.tolist()], [b.tolist()], [0])[0, 0]
        assert box_iou(a, b, convention="coco") == pytest.approx(theirs, abs=1e-12)
    assert box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0  # a one-pixel box has no area in text4seg
    with pytest.raises(InputError):
        box_iou((2, 0, 1, 1), (0, 0, 1, 1))
    with pytest.raises(InputError, match="convention"):
        box_from_mask(np.ones((2, 2), bool), convention="xywh")


def test_rec_accuracy_masks_and_boxes(coco_masks):
    acc = RECAccuracy()
    coco_acc = RECAccuracy(convention="coco")
    expect = 0
    n = 0
    for m in coco_masks[:40]:
        if not m.any():
            continue
        p = np.roll(m, 12, axis=1)
        hit = acc.add(p, m)
        pb, tb = ref_box_text4seg(p), ref_box_text4seg(m)
        want = pb is not None and ref_box_iou_text4seg(pb, tb) > 0.5
        assert hit == want
        expect += want
        n += 1
        # given boxes instead of masks give the same answer
        assert RECAccuracy().add(box_from_mask(p), box_from_mask(m)) == hit
        coco_acc.add(p, box_from_mask(m, convention="coco"))
    assert acc.accuracy == expect / n and coco_acc.count == n
    target = next(m for m in coco_masks if m.any())
    assert acc.add(np.zeros_like(target), target) is False  # an empty prediction scores 0
    assert acc.add(None, (0, 0, 4, 4)) is False
    before = (acc.correct, acc.count)
    assert acc.add((0, 0, 1, 1), np.zeros((3, 3), bool)) is False  # no target: skipped, counted apart
    assert (acc.correct, acc.count, acc.skipped) == (*before, 1)
    with pytest.raises(InputError, match="no box"):
        RECAccuracy(no_target="raise").add((0, 0, 1, 1), np.zeros((3, 3), bool))
    merged = pickle.loads(pickle.dumps(acc)).merge(
        RECAccuracy.from_state(coco_acc.state() | {"convention": "text4seg"})
    )
    assert merged.count == acc.count + coco_acc.count and merged.skipped == acc.skipped == 1
    strict = RECAccuracy()
    # IoU exactly 0.5 is not a hit (> 0.5, not >=)
    assert strict.add((0, 0, 2, 2), (0, 0, 2, 4)) is False


# ---- oracle --------------------------------------------------------------------------------


@pytest.mark.slow_without_jit
@pytest.mark.parametrize("method", ["nearest", "area"])
def test_oracle_matches_direct_quantize_render(coco_masks, method):
    masks = coco_masks[:50]
    report = oracle(masks, grid=16, method=method)
    inter = union = 0
    ious = []
    vanished = 0
    for m in masks:
        back = render(quantize(m, grid=16, method=method), m.shape).astype(bool)
        i, u = int((back & m).sum()), int((back | m).sum())
        inter += i
        union += u
        ious.append(i / u if u else 1.0)
        vanished += bool(m.any() and not back.any())
    assert report.ciou == inter / union
    assert report.giou == pytest.approx(np.mean(ious), rel=1e-12)
    assert report.vanished == vanished and report.count == 50
    assert 0.0 < report.acc50 <= 1.0
    assert report.summary()["method"] == method
    split = oracle(masks[:20], grid=16, method=method).merge(oracle(masks[20:], grid=16, method=method))
    assert split.ciou == report.ciou and split.giou == report.giou and split.acc50 == report.acc50
    with pytest.raises(InputError):
        report.merge(oracle(masks[:2], grid=8))
