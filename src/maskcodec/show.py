"""Look at a sample: the decoded grid drawn over the image, with the text beside it (Pillow only).

:func:`render_sample` takes an image (or nothing: a neutral grey canvas) and
an answer, decodes the answer with ``mode="repair"`` (so an imperfect model
output is still shown, its repairs listed), and draws

* a translucent colour over the cells of each foreground label,
* the cell lines of the grid,
* a legend (colour -> label),
* optionally the reference mask as a dark silhouette under the grid,
* the question, the answer and any repairs in a text panel on the right.

``maskcodec show`` is the command-line form: a JSONL record (in any format
:mod:`maskcodec.datasets.writers` writes), or an image plus answer text.
"""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np

__all__ = ["PALETTE", "gallery", "render_sample", "show_record"]

# Distinct, colour-blind-friendly hues (Okabe-Ito and Tol), then repeated.
PALETTE = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (136, 34, 85),
    (68, 170, 153),
    (153, 153, 51),
    (170, 68, 153),
    (51, 34, 136),
)
_NEUTRAL = (200, 200, 200)
_PANEL_W = 460
_ALPHA = 110


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _as_image(image, size):
    from PIL import Image

    if image is None:
        if size is None:
            raise TypeError("without an image, give size=(height, width) for the canvas")
        h, w = size
        return Image.new("RGB", (w, h), _NEUTRAL), "no image: neutral background"
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            return img.convert("RGB"), None
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB"), None
    return image.convert("RGB"), None


def render_sample(
    image,
    answer: str,
    /,
    *,
    question: str | None = None,
    size=None,
    mask=None,
    title: str | None = None,
    grid=None,
):
    """Draw a decoded answer over an image; returns a ``PIL.Image.Image`` (RGB).

    Parameters
    ----------
    image : PIL image, ndarray, path or None
        None draws on a neutral grey canvas of ``size = (height, width)``.
    answer : str
        Text holding a ``<seg>`` answer (any surrounding sentence is fine).
    question : str, optional
        Shown above the answer in the text panel.
    mask : ndarray, optional
        A reference mask (same size as the image), drawn as a dark silhouette.
    grid : int or (int, int), optional
        The grid size, when the answer alone cannot tell (see :func:`maskcodec.parse`).

    Examples
    --------
    >>> import maskcodec as mc, numpy as np
    >>> m = np.zeros((60, 80), bool); m[10:40, 20:60] = True
    >>> img = render_sample(None, mc.encode_mask(m, "box", grid=8), size=(60, 80), question="Segment box.")
    >>> img.mode, img.size[0] > 80
    ('RGB', True)
    """
    from PIL import Image, ImageDraw

    from ._parser import parse

    base, note = _as_image(image, size)
    w, h = base.size
    result = parse(answer, mode="repair", grid=grid)
    g = result.grid
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        if m.shape != (h, w):
            raise ValueError(f"mask has shape {m.shape} but the image is {h}x{w}")
        arr = np.asarray(base).copy()
        arr[m] = (arr[m] * 0.35).astype(np.uint8)
        base = Image.fromarray(arr)
    ids = g.render((h, w))
    overlay = np.zeros((h, w, 4), np.uint8)
    for k in range(1, len(g.labels)):
        overlay[ids == k] = (*PALETTE[(k - 1) % len(PALETTE)], _ALPHA)
    pic = Image.alpha_composite(base.convert("RGBA"), Image.fromarray(overlay, "RGBA"))
    draw = ImageDraw.Draw(pic)
    line = (255, 255, 255, 90)
    for r in range(1, g.rows):
        y = r * h // g.rows
        draw.line([(0, y), (w - 1, y)], fill=line)
    for c in range(1, g.cols):
        x = c * w // g.cols
        draw.line([(x, 0), (x, h - 1)], fill=line)

    font = _font()
    lines: list[tuple[str, tuple]] = []
    if title:
        lines.append((title, (0, 0, 0)))
    if note:
        lines.append((note, (120, 0, 0)))
    lines.append(
        (
            f"grid {g.rows}x{g.cols}, {len(g.labels) - 1} label(s)"
            + ("" if result.complete else ", answer incomplete"),
            (60, 60, 60),
        )
    )
    lines.append(("", (0, 0, 0)))
    legend_at = len(lines)
    for k in range(1, len(g.labels)):
        lines.append((g.labels[k], (0, 0, 0)))
    if len(g.labels) == 1:
        lines.append(("(no foreground)", (90, 90, 90)))
    lines.append(("", (0, 0, 0)))
    width_chars = 70
    if question:
        lines.append(("Q:", (0, 0, 120)))
        lines += [(s, (0, 0, 120)) for s in textwrap.wrap(question, width_chars) or [""]]
    lines.append(("A:", (0, 90, 0)))
    for raw in answer.split("\n"):
        for s in textwrap.wrap(raw, width_chars, replace_whitespace=False, drop_whitespace=False) or [""]:
            lines.append((s, (0, 90, 0)))
    for rep in result.repairs:
        lines.append((f"repair at {rep.line}:{rep.column}: {rep.kind}", (150, 0, 0)))

    step = 13
    panel_h = 10 + step * len(lines)
    canvas = Image.new("RGB", (w + _PANEL_W, max(h, panel_h)), (255, 255, 255))
    canvas.paste(pic.convert("RGB"), (0, 0))
    d = ImageDraw.Draw(canvas)
    x0 = w + 10
    for i, (text, colour) in enumerate(lines):
        y = 5 + i * step
        x = x0
        if legend_at <= i < legend_at + len(g.labels) - 1:
            k = i - legend_at + 1
            d.rectangle([x0, y + 1, x0 + 22, y + 10], fill=PALETTE[(k - 1) % len(PALETTE)], outline=(0, 0, 0))
            x = x0 + 30
        d.text((x, y), text, fill=colour, font=font)
    return canvas


def show_record(record, /, *, image_root: str = "", size=None, grid=None):
    """Render a conversation record (dict or JSON line) with :func:`render_sample`.

    The image is ``image_root/<record image>``; when it is missing the grid
    is drawn on a neutral canvas of ``size`` (default: 32 pixels per cell)
    and the panel says so.
    """
    from .datasets.writers import answer_of

    if isinstance(record, str):
        record = json.loads(record)
    image_path, question, answer = answer_of(record)
    path = os.path.join(image_root, image_path) if image_root and image_path else image_path
    title = f"{record.get('id', '')}  {image_path}".strip()
    if path and os.path.isfile(path):
        return render_sample(path, answer, question=question, title=title, grid=grid)
    if size is None:
        from ._parser import parse

        g = parse(answer, mode="repair", grid=grid).grid
        size = (32 * g.rows, 32 * g.cols)
    img = render_sample(None, answer, question=question, size=size, title=title, grid=grid)
    return img


def _read_arg(arg: str) -> str:
    if arg.startswith("@"):
        with open(arg[1:], encoding="utf-8") as fh:
            return fh.read()
    return arg


def show_cli(args) -> int:
    from ._cli_codec import _size
    from .cli import CLIError

    size = _size(args.size) if args.size else None
    sample = args.sample
    if args.answer is not None:
        answer = _read_arg(args.answer)
        image = sample if os.path.isfile(sample) else None
        if image is None and size is None:
            raise CLIError(f"{sample}: image not found; give --size WIDTHxHEIGHT to draw on a blank canvas")
        img = render_sample(image, answer, size=size, title=sample + ("" if image else " (not found)"))
    else:
        if sample.startswith("@"):
            with open(sample[1:], encoding="utf-8") as fh:
                lines = [ln for ln in fh if ln.strip()]
            if not 1 <= args.line <= len(lines):
                raise CLIError(f"{sample[1:]} has {len(lines)} records; --line {args.line} is out of range")
            sample = lines[args.line - 1]
        try:
            record = json.loads(sample)
        except json.JSONDecodeError as exc:
            raise CLIError(f"SAMPLE is not a JSON record ({exc}); for an image pass --answer TEXT") from None
        try:
            img = show_record(record, image_root=args.image_root, size=size)
        except StopIteration:
            raise CLIError("the record has no user or assistant turn") from None
    img.save(args.output)
    print(f"wrote {args.output} ({img.size[0]}x{img.size[1]})")
    return 0


def _coco_name(cat: int) -> str:
    from ._cli_codec import _COCO_NAMES

    return _COCO_NAMES[cat] if 0 < cat < len(_COCO_NAMES) and _COCO_NAMES[cat] else f"class {cat}"


def gallery(
    out_dir, /, *, indices=(3, 0, 13, 21), grid: int = 16, scene: int | None = 139, scene_grid: int = 32
) -> list[str]:
    """Render bundled real COCO masks (``maskcodec/data/coco_sample.json``) as show PNGs.

    The COCO images are not shipped, so each mask is drawn as a dark
    silhouette on a neutral grey canvas of the image's size, with the decoded
    ``grid`` answer over it.  ``scene`` (a COCO image id) adds one multi-label
    picture: every bundled mask of that image in one label map, instances
    numbered per class (``chair 1``, ``chair 2``), at ``scene_grid``.  Returns
    the written paths.
    """
    from importlib import resources

    from .coco import rle_to_mask
    from .datasets.templates import DEFAULT_TEMPLATES
    from .text import encode_mask

    anns = json.loads(resources.files("maskcodec").joinpath("data/coco_sample.json").read_text())
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in indices:
        ann = anns[i]
        mask = rle_to_mask(ann["segmentation"]).astype(bool)
        name = _coco_name(ann["category_id"])
        seg = encode_mask(mask, name, grid=grid)
        q, a = DEFAULT_TEMPLATES.render("referring", [name], seg, seed=0, key=str(i))
        img = render_sample(
            None,
            a,
            question=q,
            size=mask.shape,
            mask=mask,
            title=f"COCO val2014 image {ann['image_id']}, mask {i} ({name})",
        )
        path = os.path.join(out_dir, f"show_{i:02d}_{name.replace(' ', '_')}.png")
        img.save(path, optimize=True)
        paths.append(path)
    mine = [a for a in anns if a["image_id"] == scene] if scene is not None else []
    if mine:
        masks = [rle_to_mask(a["segmentation"]).astype(bool) for a in mine]
        totals: dict[str, int] = {}
        for a in mine:
            totals[_coco_name(a["category_id"])] = totals.get(_coco_name(a["category_id"]), 0) + 1
        seen: dict[str, int] = {}
        names = {}
        for k, a in enumerate(mine, 1):
            n = _coco_name(a["category_id"])
            seen[n] = seen.get(n, 0) + 1
            names[k] = f"{n} {seen[n]}" if totals[n] > 1 else n
        labels = np.zeros(masks[0].shape, np.int32)
        for k in sorted(range(len(masks)), key=lambda j: -int(masks[j].sum())):  # small objects on top
            labels[masks[k]] = k + 1
        seg = encode_mask(labels, names, grid=scene_grid)
        present = [names[k] for k in sorted(names)]
        q, a = DEFAULT_TEMPLATES.render("semantic", present, seg, seed=0, key=f"scene{scene}")
        img = render_sample(
            None,
            a,
            question=q,
            size=labels.shape,
            mask=labels > 0,
            grid=scene_grid,
            title=f"COCO val2014 image {scene}: {len(mine)} objects, {scene_grid}x{scene_grid}",
        )
        path = os.path.join(out_dir, f"show_scene_{scene}.png")
        img.save(path, optimize=True)
        paths.append(path)
    return paths
