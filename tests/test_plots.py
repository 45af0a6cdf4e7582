"""Plots read plainly: tick labels are plain numbers, every point carries its grid label, and
no label is cut off by the figure's edge (``stats --plot``, ``compare --plot``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from maskcodec.cli import main

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture
def figures(monkeypatch):
    """The figures the commands save (captured, then saved as usual)."""
    from matplotlib.figure import Figure

    saved = []
    real = Figure.savefig

    def spy(self, *args, **kwargs):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self).draw()
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def _check(fig, want_labels):
    ax = fig.axes[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    lo, hi = ax.get_xlim()
    ticks = [t.get_text() for t in ax.get_xticklabels() + ax.get_xminorticklabels()
             if t.get_text() and lo <= t.get_position()[0] <= hi]
    visible = ticks
    assert visible and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in visible), visible  # no 6×10¹
    notes = [c for c in ax.texts]
    texts = {n.get_text() for n in notes}
    assert want_labels <= texts, (want_labels, texts)
    box = fig.bbox
    for n in notes:
        ext = n.get_window_extent(renderer)
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, n.get_text()


def test_stats_plot_plain_ticks_and_labels(tmp_path, capsys, figures):
    m = np.zeros((64, 64), np.uint8)
    m[5:50, 8:40] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    rc = main(["stats", str(tmp_path / "m.png"), "--grid", "4", "8", "16", "32", "--plot", str(tmp_path / "p.png")])
    assert rc == 0, capsys.readouterr().err
    assert len(figures) == 1
    _check(figures[0], {"4x4", "8x8", "16x16", "32x32"})


def test_compare_pareto_points_are_labelled(tmp_path, capsys, figures):
    from conftest import COCO_FILE

    rc = main(["compare", str(COCO_FILE), "--limit", "4", "--grid", "8", "16", "--box-grid", "8",
               "--vertices", "8", "--no-progress", "--plot", str(tmp_path / "c.png")])
    assert rc == 0, capsys.readouterr().err
    ax = figures[0].axes[0]
    front = [line for line in ax.lines if line.get_label() == "Pareto front"][0]
    assert len(ax.texts) == len(front.get_xdata()) >= 1
    assert all(re.search(r"\d+x\d+|\d+v", t.get_text()) for t in ax.texts)
    _check(figures[0], set())
