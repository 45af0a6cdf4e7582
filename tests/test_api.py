"""The public surface: __all__, lazy imports, the error hierarchy, the reference table."""

from __future__ import annotations

import inspect
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import maskcodec as mc
import reference as ref

TESTS = Path(__file__).parent


def test_all_is_sorted_and_complete():
    assert mc.__all__ == sorted(mc.__all__)
    assert len(set(mc.__all__)) == len(mc.__all__)
    for name in mc.__all__:
        assert hasattr(mc, name), name
    public = {
        name
        for name, value in vars(mc).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public <= set(mc.__all__), f"public but not in __all__: {sorted(public - set(mc.__all__))}"


def test_every_public_name_is_documented():
    for name in mc.__all__:
        obj = getattr(mc, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


@pytest.mark.parametrize("module", ["numba", "torch", "transformers", "pycocotools", "maskcodec._kernels"])
def test_import_maskcodec_is_lazy(module):
    code = f"import sys, maskcodec; print({module!r} in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", f"import maskcodec imports {module}"


def test_error_hierarchy():
    assert issubclass(mc.MaskcodecError, ValueError)
    for cls in (mc.InputError, mc.LabelError, mc.ParseError):
        assert issubclass(cls, mc.MaskcodecError)


def test_parse_error_fields_and_pickling():
    with pytest.raises(mc.ParseError) as info:
        mc.parse("<seg>others *4\n others *3\n</seg>")
    err = info.value
    assert (err.line, err.column, err.pos) == (2, 11, 25)
    assert err.reason == "row 2 has 3 cells, expected 4"
    assert err.expected == "'| ' and more runs"
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, mc.ParseError)
    assert (back.line, back.column, back.pos, back.reason, back.expected, str(back)) == (
        err.line, err.column, err.pos, err.reason, err.expected, str(err)
    )


def test_parse_error_position_clamped():
    err = mc.ParseError("boom", "ab\ncd", 99)
    assert (err.pos, err.line, err.column) == (5, 2, 3)
    assert str(err) == "line 2, column 3: boom"


def test_version():
    assert isinstance(mc.__version__, str) and mc.__version__.count(".") >= 2


def test_max_grid_side():
    assert mc.MAX_GRID_SIDE == 1024


def test_reference_table_names_real_references_and_tests():
    from maskcodec import _kernels

    for key, (reference, where) in ref.REFERENCES.items():
        if reference not in ("the hand-written strict parser",):
            assert hasattr(ref, reference), (key, reference)
        path, _, test = where.partition("::")
        source = (TESTS / path).read_text(encoding="utf-8")
        assert f"def {test}(" in source, where
    # Every public kernel has a reference.
    kernels = [
        name
        for name, obj in vars(_kernels).items()
        if not name.startswith("_") and (hasattr(obj, "py_func") or inspect.isfunction(obj))
    ]
    assert {"nearest_sample", "write_text", "parse_rrle", "render"} <= set(kernels)
    keys = " ".join(ref.REFERENCES)
    missing = [k for k in kernels if not re.search(rf"\b{k}\b", keys)]
    assert not missing, f"kernels without a reference in tests/reference.py: {missing}"
