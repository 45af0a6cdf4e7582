"""The fuzz harness (fuzz/), run briefly: every target on a small budget, and the rule itself.

The long run is ``python fuzz/fuzz.py`` (or ``--atheris``); see docs/hostile.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from strategies import examples

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz  # noqa: E402
import targets  # noqa: E402

import maskcodec as mc  # noqa: E402


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_target_holds_on_a_short_run(name):
    @settings(max_examples=examples(40 if name in ("cli", "dataset") else 100))
    @given(text=fuzz.strategy())
    def check(text):
        targets.run(name, text)

    check()


def test_a_foreign_exception_is_caught(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("deep inside")

    monkeypatch.setattr(mc, "parse", broken)
    with pytest.raises(targets.Escaped, match="rle: KeyError escaped"):
        targets.run("rle", "<seg>dog *1\n</seg>")


def test_an_error_where_none_may_be_raised_is_caught(monkeypatch):
    from maskcodec import dialects

    def strict_everywhere(text, d, *, grid, mode="strict", **kw):
        raise mc.ParseError("no", text, 0)

    monkeypatch.setattr(dialects, "parse", strict_everywhere)
    with pytest.raises(targets.Escaped, match="ParseError where nothing may be raised"):
        targets.run("dialect", "<seg>a\n</seg>")


def test_a_broken_round_trip_is_caught(monkeypatch):
    monkeypatch.setattr(mc.LabelGrid, "to_text", lambda self, **kw: "<seg>others *1\n</seg>")
    text = "<seg>others *1| dog *1\n</seg>"
    text = "x" * (-len(text) % 3) + text  # a length the target reads without a fixed grid
    with pytest.raises(AssertionError):
        targets.run("rle", text)


def test_valid_inputs_of_every_form_parse():
    """The 'valid then edited' inputs without edits are valid: the round-trip rule is exercised."""
    for form in range(8):
        text = fuzz._valid((3, 4, 7, form, []))
        for name in targets.TARGETS:
            targets.run(name, text)


def test_the_driver_runs_and_reports(capsys):
    assert fuzz.main(["poly", "--examples", "5", "--seed", "1"]) == 0
    assert "poly       5 examples" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        fuzz.main(["nope"])
