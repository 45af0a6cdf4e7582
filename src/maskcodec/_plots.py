"""Plot helpers shared by ``maskcodec stats --plot`` and ``maskcodec compare --plot``."""

from __future__ import annotations


def plain_log_x(ax) -> None:
    """A log x axis whose ticks read 20, 50, 100, 200 (not 2×10¹, and no unlabelled minor
    ticks in between that matplotlib would write as 6×10¹)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    # Room on both sides for the labels of the first and last points.
    ax.margins(x=0.12)


def label_points(ax, points, *, fontsize: int = 8) -> None:
    """Write ``label`` beside each ``(x, y, label)``, kept inside the axes."""
    for x, y, label in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=fontsize,
                    annotation_clip=False)
