"""Question and answer templates, and the seeded choice among them.

A template file is JSON::

    {
      "referring": {"questions": ["Segment {label}."], "answers": ["Mask of {label}:\\n{seg}"]},
      "semantic":  {"questions": ["Segment {labels}."], "answers": ["{seg}"]},
      "label_separator": "|"
    }

Placeholders: ``{label}`` (the referring sentence or class name) in the
``referring`` templates, ``{labels}`` (the class names joined with
``label_separator``) in the ``semantic`` ones, and ``{seg}`` (the encoded
grid, ``<seg>...</seg>``) exactly once in every answer.  Sections left out
keep the built-in templates.  Placeholders are replaced literally, so braces in
labels are harmless.

The template of a sample is drawn with ``random.Random(f"{seed}/{sample_id}")``:
the same seed gives the same output whatever the number of workers, the order
of processing or an interruption and resume.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._errors import InputError

__all__ = ["DEFAULT_TEMPLATES", "Templates", "load_templates"]

_REFERRING_Q = (
    "Can you segment {label} in this image?",
    "Please outline {label} in the picture.",
    "Where is {label}? Answer with a segmentation mask.",
    "Segment {label}.",
    "Which part of the image shows {label}? Give its mask.",
    "Mark the region covered by {label}.",
)
_REFERRING_A = (
    "Here is the mask of {label}:\n{seg}",
    "The region of {label} is:\n{seg}",
    "Sure, this is where {label} is:\n{seg}",
    "Segmentation of {label}:\n{seg}",
)
_SEMANTIC_Q = (
    "Segment the following classes in the image: {labels}.",
    "Please label every pixel that belongs to {labels}.",
    "Give the semantic segmentation of {labels}.",
    "Which regions show {labels}? Answer with masks.",
)
_SEMANTIC_A = (
    "Here are the masks:\n{seg}",
    "Sure, the segmentation is:\n{seg}",
    "The labelled regions are:\n{seg}",
)
_PLACEHOLDER = re.compile(r"\{([a-z_]*)\}")
_ALLOWED = {"referring": ("label",), "semantic": ("labels",)}


@dataclass(frozen=True)
class Templates:
    """Question/answer templates per task and the separator for class-name lists."""

    referring_questions: tuple[str, ...] = _REFERRING_Q
    referring_answers: tuple[str, ...] = _REFERRING_A
    semantic_questions: tuple[str, ...] = _SEMANTIC_Q
    semantic_answers: tuple[str, ...] = _SEMANTIC_A
    label_separator: str = "|"

    def __post_init__(self) -> None:
        for task in ("referring", "semantic"):
            _check(getattr(self, f"{task}_questions"), task, answer=False)
            _check(getattr(self, f"{task}_answers"), task, answer=True)

    def render(self, task: str, names: Sequence[str], seg: str, *, seed: int, key: str) -> tuple[str, str]:
        """``(question, answer)`` for one sample, chosen reproducibly from ``seed`` and ``key``.

        Examples
        --------
        >>> t = Templates()
        >>> q, a = t.render("referring", ["white horse"], "<seg>...</seg>", seed=0, key="ref1")
        >>> "white horse" in q and a.endswith("<seg>...</seg>")
        True
        >>> same = [t.render("referring", ["x"], "S", seed=0, key="ref1") for _ in range(2)]
        >>> same[0] == same[1]
        True
        """
        rng = random.Random(f"{seed}/{key}")
        if task == "referring":
            qs, ans, slot, value = self.referring_questions, self.referring_answers, "{label}", names[0]
        elif task == "semantic":
            qs, ans, slot = self.semantic_questions, self.semantic_answers, "{labels}"
            value = self.label_separator.join(names)
        else:
            raise InputError(f"unknown task {task!r}; choose 'referring' or 'semantic'")
        q = rng.choice(qs)
        a = rng.choice(ans)
        # seg last: a label can never inject a {seg}
        return q.replace(slot, value), a.replace(slot, value).replace("{seg}", seg)

    def to_json(self) -> dict:
        return {
            "referring": {
                "questions": list(self.referring_questions),
                "answers": list(self.referring_answers),
            },
            "semantic": {"questions": list(self.semantic_questions), "answers": list(self.semantic_answers)},
            "label_separator": self.label_separator,
        }


def _check(items: Sequence[str], task: str, *, answer: bool) -> None:
    kind = "answer" if answer else "question"
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InputError(f"{task} {kind}s must be a non-empty list of strings")
    allowed = _ALLOWED[task] + (("seg",) if answer else ())
    for t in items:
        if not isinstance(t, str):
            raise InputError(f"{task} {kind} template must be a str, got {t!r}")
        found = _PLACEHOLDER.findall(t)
        bad = [p for p in found if p not in allowed]
        if bad:
            raise InputError(
                f"{task} {kind} template {t!r} uses {{{bad[0]}}}; allowed: "
                + ", ".join("{" + a + "}" for a in allowed)
            )
        if answer and found.count("seg") != 1:
            raise InputError(f"{task} answer template {t!r} must hold {{seg}} exactly once")
        if not answer and _ALLOWED[task][0] not in found:
            raise InputError(
                f"{task} question template {t!r} never names the target ({{{_ALLOWED[task][0]}}})"
            )


DEFAULT_TEMPLATES = Templates()


def load_templates(source) -> Templates:
    """Templates from a JSON file path or an already-parsed mapping (see the module docs)."""
    if isinstance(source, Templates):
        return source
    if isinstance(source, Mapping):
        data = source
        where = "templates"
    else:
        where = str(source)
        try:
            with open(source, encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: a template file holds a JSON object")
    unknown = set(data) - {"referring", "semantic", "label_separator"}
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {sorted(unknown)}; use referring, semantic, label_separator"
        )
    kw = {}
    for task in ("referring", "semantic"):
        sec = data.get(task, {})
        if not isinstance(sec, Mapping) or set(sec) - {"questions", "answers"}:
            raise InputError(f"{where}: {task!r} must be an object with 'questions' and/or 'answers'")
        for part in ("questions", "answers"):
            if part in sec:
                kw[f"{task}_{part}"] = tuple(sec[part]) if isinstance(sec[part], list) else sec[part]
    if "label_separator" in data:
        if not isinstance(data["label_separator"], str):
            raise InputError(f"{where}: label_separator must be a str")
        kw["label_separator"] = data["label_separator"]
    try:
        return Templates(**kw)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
