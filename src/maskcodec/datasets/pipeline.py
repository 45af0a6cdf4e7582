"""The conversion pipeline: samples -> encoded grids -> conversation JSONL, safely and in parallel.

Guarantees
----------
* **Atomic output.**  Lines go to ``OUT.partial`` as they are made; only a
  finished run renames it to ``OUT`` (``os.replace``), so ``OUT`` is never a
  half-written file.
* **Resumable.**  After every chunk, ``OUT.partial.json`` records how many
  samples are done, the byte length of ``OUT.partial`` at that point and the
  running statistics (written atomically too).  ``resume=True`` checks that the
  configuration is the same, cuts ``OUT.partial`` back to that length (dropping
  a torn last line) and carries on with the next sample.
* **Reproducible.**  Templates are chosen from ``(seed, sample id)``; records
  come out in source order whatever ``workers`` is, so 1 and N workers write
  byte-identical files.
* **Nothing dropped silently.**  A sample that cannot be encoded (missing or
  corrupt file, class id without a name...) is a :class:`Problem` in the
  summary and on stderr, or stops the run with ``on_error="raise"``.

Token statistics are :func:`maskcodec.tokens.estimate_tokens` of each
``<seg>...</seg>`` text (LLaMA-style SentencePiece costs, within a few percent
of a real tokenizer); where that module is missing, the number of words and
punctuation marks of the whole answer (:func:`count_pieces`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._errors import InputError, MaskcodecError
from .._progress import Progress
from ..grid import LabelGrid
from ..text import encode_grid, format_code, to_text
from ._sample import ArrayTarget, CocoMapTarget, CocoTarget, DatasetError, PngTarget, Problem, Sample
from .templates import DEFAULT_TEMPLATES, Templates, load_templates
from .writers import FORMATS, dataset_info_entry, jsonl_to_array, layout_of, make_record, write_dataset_info

__all__ = ["ConvertOptions", "ConvertSummary", "convert", "convert_sample", "count_pieces"]

_PIECE = re.compile(r"\w+|[^\w\s]")


def count_pieces(text: str) -> int:
    """Words and punctuation marks in ``text``: the fallback token count.

    Examples
    --------
    >>> count_pieces("<seg>others *16\\n</seg>")
    10
    """
    return len(_PIECE.findall(text))


@dataclass(frozen=True)
class ConvertOptions:
    """How samples become records (everything but where they come from and go to)."""

    to: str = "llava"
    grid: int | tuple[int, int] = 16
    method: str = "nearest"
    format: str = "rrle"
    nonempty: bool = False
    background: str = "others"
    seed: int = 0
    templates: Templates = DEFAULT_TEMPLATES

    def __post_init__(self) -> None:
        if self.to not in FORMATS:
            raise InputError(f"unknown output format {self.to!r}; choose one of {', '.join(FORMATS)}")
        format_code(self.format)
        if self.method not in ("nearest", "area", "coverage"):
            raise InputError(f"unknown method {self.method!r}; choose nearest, area or coverage")
        if not isinstance(self.templates, Templates):
            object.__setattr__(self, "templates", load_templates(self.templates))

    def fingerprint(self) -> dict:
        cfg = {
            k: getattr(self, k) for k in ("to", "grid", "method", "format", "nonempty", "background", "seed")
        }
        cfg["grid"] = list(cfg["grid"]) if isinstance(cfg["grid"], tuple) else cfg["grid"]
        digest = hashlib.sha256(json.dumps(self.templates.to_json(), sort_keys=True).encode()).hexdigest()
        cfg["templates"] = digest[:16]
        return cfg


def encode_target(sample: Sample, opts: ConvertOptions) -> tuple[LabelGrid, list[str]]:
    """The grid of a sample and the names its question should ask for."""
    t = sample.target
    if isinstance(t, CocoTarget):
        ids = t.grid(grid=opts.grid, method=opts.method, nonempty=opts.nonempty)
        return LabelGrid._trusted(ids, (opts.background, sample.label)), [sample.label]
    if isinstance(t, (PngTarget, CocoMapTarget)) or (isinstance(t, ArrayTarget) and t.names):
        labels, table = t.load()
        present = [int(v) for v in np.unique(labels) if int(v) in table]
        names = list(dict.fromkeys(table[v] for v in present))
        if not names:
            where = t.path if isinstance(t, PngTarget) else getattr(t, "source", "") or sample.id
            raise DatasetError(where, "no labelled class in the image (all background or ignored)")
        # PngTarget has already turned ignored pixels into 0; an in-memory map may still hold 255
        g = encode_grid(
            labels,
            table,
            grid=opts.grid,
            method=opts.method,
            background=opts.background,
            nonempty=opts.nonempty,
            ignore_index=None if isinstance(t, PngTarget) else 255,
        )
        return g, names
    if isinstance(t, ArrayTarget):
        g = encode_grid(
            t.load(),
            sample.label,
            grid=opts.grid,
            method=opts.method,
            background=opts.background,
            nonempty=opts.nonempty,
        )
        return g, [sample.label]
    raise TypeError(f"unknown target type {type(t).__name__}")


def _record(sample: Sample, opts: ConvertOptions) -> tuple[dict, str]:
    """The record of a sample and its ``<seg>`` text."""
    g, names = encode_target(sample, opts)
    seg = to_text(g, format=opts.format, envelope=True)
    question, answer = opts.templates.render(sample.task, names, seg, seed=opts.seed, key=sample.id)
    return make_record(opts.to, id=sample.id, image=sample.image, question=question, answer=answer), seg


def convert_sample(sample: Sample, opts: ConvertOptions) -> dict:
    """One :class:`Sample` as a record in ``opts.to`` (raises on a bad sample).

    Examples
    --------
    >>> import numpy as np
    >>> from maskcodec.datasets import Sample, ArrayTarget
    >>> m = np.zeros((4, 4), bool); m[:2, :2] = True
    >>> rec = convert_sample(Sample("s1", "a.jpg", "dog", ArrayTarget(m)), ConvertOptions(grid=2))
    >>> print(rec["conversations"][1]["value"].split(":", 1)[1])
    <BLANKLINE>
    <seg>dog *1| others *1
     others *2
    </seg>
    """
    return _record(sample, opts)[0]


def _token_counter(fmt: str):
    """``(description, count(seg_text) -> int)``: the token statistic of the summary.

    The count is :func:`maskcodec.tokens.estimate_tokens` (LLaMA-style
    SentencePiece costs) computed from the text itself: per run, the label's
    cost, one token for ``" *"``, one per digit and one for the separator after
    it (``|`` or the newline); per cell of a full-descriptor text, the label and
    its separator; plus 6 for ``<seg>``/``</seg>``.  Equal to ``estimate_tokens``
    of the grid (the tests check it on the shared COCO masks), at a third of the
    cost: the numpy version took 40% of a conversion's time on small grids.
    """
    try:
        from ..tokens import guess_label_tokens
    except ImportError:  # pragma: no cover - the module ships with maskcodec; kept for partial installs
        return "words and symbols of the answer", count_pieces

    def count(seg: str) -> int:
        body = seg[len("<seg>") : -len("\n</seg>")]
        total = _ENVELOPE_TOKENS
        if fmt == "full":
            for label in body.split("| "):
                total += _label_cost(label, guess_label_tokens) + 1
            return total
        for run in body.replace("\n ", "| ").split("| "):
            star = run.rfind(" *")
            total += _label_cost(run[:star], guess_label_tokens) + len(run) - star
        return total

    return "estimated tokens of the <seg> text (LLaMA-style SentencePiece)", count


_ENVELOPE_TOKENS = 6  # "<", "seg", ">" and "</", "seg", ">"


@functools.lru_cache(maxsize=65536)
def _label_cost(label: str, guess) -> int:
    # the same few labels recur in every sample; guessing each anew cost a fifth of the run time
    return guess(label)


# Set in the parent just before a fork-started pool: children inherit the samples, so a job is only
# an index range and the parent no longer pickles every sample it hands out.
_FORKED: tuple | None = None


def _work_range(job):
    start, stop = job
    samples, opts, fatal = _FORKED
    return _work((samples[start:stop], opts, fatal))


def _work(job):
    """Worker: encode a chunk; returns ``[(line or None, Problem or None, pieces)]`` in order."""
    samples, opts, fatal = job
    _, count = _token_counter(opts.format)
    out = []
    for s in samples:
        try:
            rec, seg = _record(s, opts)
        except (ValueError, OSError, TypeError, KeyError) as exc:  # MaskcodecError is a ValueError
            if fatal:
                raise
            path = (
                exc.path
                if isinstance(exc, DatasetError)
                else getattr(s.target, "path", "") or getattr(s.target, "source", "") or s.image
            )
            if isinstance(exc, DatasetError):
                reason = exc.reason
            elif isinstance(exc, MaskcodecError):
                reason = str(exc)
            else:
                reason = f"{type(exc).__name__}: {exc}"
            out.append((None, Problem(path, reason, s.id), 0))
            continue
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        out.append((line, None, count(seg)))
    return out


@dataclass
class ConvertSummary:
    """What a conversion did."""

    output: str
    samples: int = 0  # records written
    skipped: int = 0  # samples that could not be converted (see problems)
    problems: list[Problem] = field(default_factory=list)
    source_problems: int = 0  # problems met while reading the source (before conversion)
    token_counts: Counter = field(default_factory=Counter)  # answer length -> how many
    seconds: float = 0.0
    resumed_from: int = 0

    @property
    def tokens(self) -> dict:
        """``{"total", "mean", "median", "p95", "max"}`` of answer lengths (see the module docs)."""
        n = sum(self.token_counts.values())
        if not n:
            return {"total": 0, "mean": math.nan, "median": math.nan, "p95": math.nan, "max": 0}
        total = sum(k * v for k, v in self.token_counts.items())
        keys = sorted(self.token_counts)

        def quantile(q: float) -> int:
            rank = max(1, math.ceil(q * n))
            seen = 0
            for k in keys:
                seen += self.token_counts[k]
                if seen >= rank:
                    return k
            return keys[-1]

        return {
            "total": total,
            "mean": total / n,
            "median": quantile(0.5),
            "p95": quantile(0.95),
            "max": keys[-1],
        }

    def to_text(self) -> str:
        t = self.tokens
        rate = (self.samples + self.skipped - self.resumed_from) / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"wrote {self.samples} samples to {self.output}"
            + (f" (resumed after {self.resumed_from})" if self.resumed_from else ""),
            self._skipped_line(),
            (
                f"answer length ({_token_counter('rrle')[0]}): mean {t['mean']:.1f}, "
                f"median {t['median']}, p95 {t['p95']}, max {t['max']}, total {t['total']}"
            ),
            f"{self.seconds:.1f} s, {rate:.0f} samples/s",
        ]
        return "\n".join(lines)

    def _skipped_line(self) -> str:
        total = self.skipped + self.source_problems
        if not total:
            return "skipped no samples"
        return (
            f"skipped {total} samples in all: {self.source_problems} while reading the source, "
            f"{self.skipped} while encoding"
        )

    def _state(self) -> dict:
        return {
            "samples": self.samples,
            "skipped": self.skipped,
            "problems": [[p.path, p.reason, p.sample] for p in self.problems],
            "token_counts": {str(k): v for k, v in self.token_counts.items()},
        }

    def _restore(self, st: dict) -> None:
        self.samples, self.skipped = int(st["samples"]), int(st["skipped"])
        self.problems = [Problem(*p) for p in st["problems"]]
        self.token_counts = Counter({int(k): int(v) for k, v in st["token_counts"].items()})


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def convert(
    samples: Sequence[Sample],
    output,
    /,
    *,
    to: str = "llava",
    grid: int | tuple[int, int] = 16,
    method: str = "nearest",
    format: str = "rrle",
    nonempty: bool = False,
    seed: int = 0,
    templates=None,
    workers: int = 1,
    chunk_size: int = 256,
    resume: bool = False,
    on_error: str = "skip",
    progress: bool | None = None,
    stream=None,
    source_name: str = "",
    layout: str | None = None,
    dataset_info: bool | None = None,
    _after_chunk: Callable[[int], None] | None = None,
) -> ConvertSummary:
    """Convert samples (e.g. a :class:`Source`) to a JSONL file of conversation records.

    Parameters
    ----------
    samples : sequence of Sample
        In a fixed order (resume counts on it).
    output : str or path
        The JSONL file; it appears only when the run finishes.
    to : {"llava", "sharegpt", "ms-swift", "swift", "hf-messages"}
        Record format (see :mod:`maskcodec.datasets.writers`).
    grid, method, format, nonempty
        Codec configuration (see :func:`maskcodec.encode_mask`).
    seed : int
        Seeds the template choice.
    templates : Templates, mapping or path, optional
        Question/answer templates (see :mod:`maskcodec.datasets.templates`).
    workers : int
        Processes encoding chunks of ``chunk_size`` samples; output order is
        the input order.
    resume : bool
        Carry on from ``OUTPUT.partial`` left by an interrupted run.
    on_error : {"skip", "raise"}
        A bad sample is reported and skipped, or stops the run.
    progress : bool, optional
        Draw a progress bar (tqdm: rate and ETA) on ``stream`` (stderr);
        default: when it is a terminal.
    stream : file, optional
        Where progress and skipped samples are reported (stderr).
    source_name : str
        Recorded in the resume state, so a resume from another source is refused.
    layout : {"jsonl", "json"}, optional
        One record per line, or one JSON array (LLaVA's ``train.py`` reads it
        with ``json.load``); default: ``"json"`` for a ``.json`` output,
        ``"jsonl"`` otherwise.
    dataset_info : bool, optional
        Add the output to LLaMA-Factory's ``dataset_info.json`` beside it;
        default: for ``"sharegpt"`` and ``"ms-swift"`` records.
    """
    opts = ConvertOptions(
        to=to,
        grid=grid,
        method=method,
        format=format,
        nonempty=nonempty,
        seed=seed,
        templates=DEFAULT_TEMPLATES if templates is None else load_templates(templates),
    )
    if on_error not in ("skip", "raise"):
        raise InputError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive int, got {workers!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive int, got {chunk_size!r}")
    output = os.fspath(output)
    layout = layout_of(output, layout)
    if dataset_info is None:
        dataset_info = to in ("sharegpt", "ms-swift")
    if dataset_info:
        dataset_info_entry(to, os.path.basename(output))  # refuses a format LLaMA-Factory cannot read
    tmp, state_path = output + ".partial", output + ".partial.json"
    stream = sys.stderr if stream is None else stream
    total = len(samples)
    config = {"source": source_name, "total": total, **opts.fingerprint()}
    summary = ConvertSummary(output, source_problems=len(getattr(samples, "problems", []) or []))
    start = 0
    if resume and os.path.exists(tmp) and os.path.exists(state_path):
        with open(state_path, encoding="utf-8") as fh:
            state = json.load(fh)
        if state.get("config") != config:
            raise InputError(
                f"{tmp}: cannot resume: it was started with {state.get('config')}, now {config}; "
                "run without --resume to start over"
            )
        start = int(state["done"])
        summary._restore(state["summary"])
        summary.resumed_from = start
        fh = open(tmp, "r+b")  # noqa: SIM115 - held across the loop, closed in the finally below
        fh.truncate(int(state["bytes"]))
        fh.seek(0, os.SEEK_END)
    elif resume and os.path.exists(output) and not os.path.exists(tmp):
        raise InputError(f"{output} is already complete; nothing to resume")
    else:
        fh = open(tmp, "wb")  # noqa: SIM115 - held across the loop, closed in the finally below
    show = stream.isatty() if progress is None and hasattr(stream, "isatty") else bool(progress)
    bar = Progress(total, show, "convert", stream=stream, initial=start, unit="sample")
    t0 = time.perf_counter()
    fatal = on_error == "raise"
    jobs = ((samples[i : i + chunk_size], opts, fatal) for i in range(start, total, chunk_size))
    pool = None
    try:
        if workers > 1 and total - start > chunk_size:
            # fork is fastest (workers inherit the loaded kernels), but forking a process that runs
            # other threads (a Ray driver, a thread pool) can deadlock a child: spawn then.
            can_fork = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
            if can_fork:
                global _FORKED
                _FORKED = (samples, opts, fatal)
                try:
                    pool = multiprocessing.get_context("fork").Pool(workers)
                finally:
                    _FORKED = None  # the children have their copy; the parent keeps no reference
                ranges = ((i, min(i + chunk_size, total)) for i in range(start, total, chunk_size))
                results = pool.imap(_work_range, ranges)  # ordered: same file for any worker count
            else:
                pool = multiprocessing.get_context("spawn").Pool(workers)
                results = pool.imap(_work, jobs)
        else:
            results = map(_work, jobs)
        done = start
        for chunk in results:
            data = []
            for line, problem, pieces in chunk:
                if line is None:
                    summary.skipped += 1
                    summary.problems.append(problem)
                    bar.write(f"maskcodec convert: skipped {problem}")
                else:
                    data.append(line)
                    summary.samples += 1
                    summary.token_counts[pieces] += 1
            fh.write("".join(data).encode("utf-8"))
            fh.flush()
            done += len(chunk)
            _write_json_atomic(
                state_path, {"config": config, "done": done, "bytes": fh.tell(), "summary": summary._state()}
            )
            bar.update(len(chunk))
            if _after_chunk is not None:
                _after_chunk(done)
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        os.fsync(fh.fileno())  # the data is on disk before the name says the file is complete
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        fh.close()
    bar.close()
    if layout == "json":
        jsonl_to_array(tmp, output + ".array")
        os.replace(output + ".array", output)
        os.remove(tmp)
    else:
        os.replace(tmp, output)
    if os.path.exists(state_path):  # (no chunk, no state: an empty source)
        os.remove(state_path)
    if dataset_info:
        write_dataset_info(output, to)
    summary.seconds = time.perf_counter() - t0
    return summary
