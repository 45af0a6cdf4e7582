"""``align="torch"`` against torch's own ``F.interpolate(mode="nearest")`` on float64 tensors.

torch is only the oracle here: maskcodec computes the index vectors itself (numpy), from the
arithmetic of ATen's CPU kernels (see ``maskcodec.grid.torch_nearest_index``).
"""

from __future__ import annotations

import numpy as np
import pytest

import maskcodec as mc
import reference as ref
from maskcodec.grid import _src_index, torch_nearest_index

torch = pytest.importorskip("torch")
F = torch.nn.functional

GRIDS = range(1, 65)


def _torch_rows(g: int, h: int, w: int, cols: int = 1) -> np.ndarray:
    """The grid row torch reads for each output row of a (g, cols) grid upsampled to (h, w)."""
    x = torch.arange(g, dtype=torch.float64).reshape(1, 1, g, 1).expand(1, 1, g, cols).contiguous()
    return F.interpolate(x, size=(h, w), mode="nearest")[0, 0, :, 0].numpy().astype(np.int64)


def _torch_both(g: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index vectors of a g x g grid at (h, w): cell (r, c) holds r * g + c."""
    x = torch.arange(g * g, dtype=torch.float64).reshape(1, 1, g, g)
    out = F.interpolate(x, size=(h, w), mode="nearest")[0, 0].numpy().astype(np.int64)
    return out[:, 0] // g, out[0] % g


def test_issue_examples():
    # A 16-long column upsampled to (n, 1) leaves dst * in // out at exactly these n <= 127.
    differ = [n for n in range(1, 128) if (torch_nearest_index(n, 16, other_out=1) != _src_index(n, 16, "corner")).any()]
    assert differ == [82, 94, 110, 122]
    for n in differ:
        np.testing.assert_array_equal(torch_nearest_index(n, 16, other_out=1), _torch_rows(16, n, 1))
    assert torch_nearest_index(82, 16, other_out=1)[41] == 7 and 41 * 16 // 82 == 8
    # The same side with a large other side takes the float64 path: dst * in // out again.
    np.testing.assert_array_equal(torch_nearest_index(82, 16, other_out=200), _src_index(82, 16, "corner"))
    # 16x16 at 82x5: output row 41 reads grid row 7 in torch; 32x32 at 3x122: column 61 reads 15.
    rng = np.random.default_rng(0)
    for (g, h, w), pixels in (((16, 82, 5), 5), ((32, 3, 122), 3)):
        ids = rng.integers(0, 250, size=(g, g)).astype(np.uint8)
        t = F.interpolate(torch.from_numpy(ids).double()[None, None], size=(h, w), mode="nearest")[0, 0].numpy()
        mine = mc.render(ids, (h, w), align="torch")
        np.testing.assert_array_equal(mine, t.astype(np.uint8))
        ys, xs = _torch_both(g, h, w)
        cy, cx = _src_index(h, g, "corner"), _src_index(w, g, "corner")
        assert int(((ys != cy)[:, None] | (xs != cx)[None, :]).sum()) == pixels


def test_render_torch_matches_torch_on_random_grids():
    rng = np.random.default_rng(1)
    shapes = [(1, 1), (3, 122), (82, 5), (64, 64), (100, 28), (127, 1), (128, 1), (480, 640), (333, 17), (7, 4096)]
    for rows, cols in ((16, 16), (24, 24), (32, 32), (5, 9), (1, 64)):
        ids = rng.integers(0, 3, size=(rows, cols)).astype(np.uint8)
        for h, w in shapes:
            t = ref.torch_upsample(ids, h, w)
            np.testing.assert_array_equal(mc.render(ids, (h, w), align="torch"), t)
            grid = mc.LabelGrid(ids.copy(), ("others", "a", "b"))
            np.testing.assert_array_equal(grid.mask((h, w), align="torch"), t != 0)
            np.testing.assert_array_equal(mc.render(ids, (h, w), align="torch", via=(336, 336)),
                                          ref.torch_upsample(ids, h, w, via=(336, 336)))


def test_two_step_upsampling_matches_the_open_vocabulary_script():
    # model_semantic_seg.py: grid -> (336, 336) -> (h_ori, w_ori), both on float64 tensors.
    rng = np.random.default_rng(2)
    for g in (16, 24, 32):
        ids = rng.integers(0, 60, size=(g, g)).astype(np.uint8)
        mid = F.interpolate(torch.from_numpy(ids).double()[None, None], size=(336, 336), mode="nearest")
        for h, w in ((480, 640), (375, 500), (335, 337), (100, 28), (60, 60), (1, 1), (2000, 3)):
            t = F.interpolate(mid, size=(h, w), mode="nearest")[0, 0].numpy().astype(np.uint8)
            np.testing.assert_array_equal(mc.render(ids, (h, w), align="torch", via=(336, 336)), t)
            text = mc.LabelGrid((ids != 0).astype(np.uint8), ("others", "x")).to_text()
            mask = mc.decode_mask(text, size=(h, w), grid=g, mode="text4seg", align="torch", via=(336, 336))
            np.testing.assert_array_equal(mask, t != 0)
    # 336 is a multiple of 16 and 24, so two steps equal one there; at 32 cells they differ.
    ids = rng.integers(0, 2, size=(32, 32)).astype(np.uint8)
    one = mc.render(ids, (1000, 999), align="torch")
    two = mc.render(ids, (1000, 999), align="torch", via=(336, 336))
    assert (one != two).any()


def test_options_are_checked():
    with pytest.raises(mc.InputError, match="unknown align 'torch64'"):
        mc.render(np.zeros((2, 2), np.uint8), (4, 4), align="torch64")
    with pytest.raises(mc.InputError, match="via must be positive"):
        mc.render(np.zeros((2, 2), np.uint8), (4, 4), align="torch", via=(0, 3))
    with pytest.raises(TypeError, match="via must be a"):
        mc.render(np.zeros((2, 2), np.uint8), (4, 4), via=336)
    with pytest.raises(mc.InputError, match="n_in must be a positive int"):
        torch_nearest_index(4, 0, other_out=1)


@pytest.mark.slow
@pytest.mark.slow_without_jit
def test_torch_index_every_side_up_to_4096_at_grids_1_to_64():
    # Both torch paths: other side 1 (float32 path for sides <= 127, float64 beyond) and, for the
    # small sides, an other side that makes h + w = 129 (float64 path).
    for g in GRIDS:
        for n in range(1, 4097):
            np.testing.assert_array_equal(torch_nearest_index(n, g, other_out=1), _torch_rows(g, n, 1), err_msg=f"{g} {n}")
            if n <= 127:
                other = 129 - n
                np.testing.assert_array_equal(
                    torch_nearest_index(n, g, other_out=other), _torch_rows(g, n, other), err_msg=f"{g} {n} {other}"
                )
        # On the float64 path torch's index is dst * in // out exactly, for every side here.
        for n in range(128, 4097):
            np.testing.assert_array_equal(torch_nearest_index(n, g, other_out=1), _src_index(n, g, "corner"))


@pytest.mark.slow
@pytest.mark.slow_without_jit
def test_torch_index_heights_1_to_512_by_widths_1_to_16_and_ordinary_widths():
    widths = (*range(1, 17), 333, 640)
    # Every (height, width) pair of real 2-D torch calls at the trained grids.
    for g in (16, 24, 32):
        for h in range(1, 513):
            for w in widths:
                ys, xs = _torch_both(g, h, w)
                np.testing.assert_array_equal(torch_nearest_index(h, g, other_out=w), ys, err_msg=f"{g} {h} {w}")
                np.testing.assert_array_equal(torch_nearest_index(w, g, other_out=h), xs, err_msg=f"{g} {h} {w}")
    # Every grid 1..64: torch's vector for one side depends on the other only through its kernel
    # choice (h + w <= 128), so one torch call per (grid, side, kernel) checks every pair.
    for g in GRIDS:
        torch_rows = {}
        for h in range(1, 513):
            for w in widths:
                key = (h, h + w <= 128)
                if key not in torch_rows:
                    torch_rows[key] = _torch_rows(g, h, w, cols=g)
                np.testing.assert_array_equal(torch_nearest_index(h, g, other_out=w), torch_rows[key], err_msg=f"{g} {h} {w}")
