"""Shared fixtures and hypothesis settings for the maskcodec test suite."""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"
COCO_FILE = DATA / "coco_val2014_segm100.json"

#: True in the second CI run, where every kernel runs as plain Python.
JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

# No deadline: the first example of a test may compile kernels (or load them from numba's cache).
settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Fewer examples when the kernels run as plain Python: that run is for coverage, not search.
settings.register_profile(
    "nojit",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "nojit" if JIT_DISABLED else "default"))


@functools.lru_cache(maxsize=1)
def coco_annotations() -> list[dict]:
    """The 734 COCO val2014 instance annotations (compressed RLE), in file order."""
    return json.loads(COCO_FILE.read_text())


@functools.lru_cache(maxsize=1)
def coco_masks() -> list[np.ndarray]:
    """The 734 masks decoded with pycocotools (Fortran-ordered uint8 arrays, as it returns them)."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():  # pycocotools' own numpy 2 deprecation, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        return [mask_utils.decode(a["segmentation"]) for a in coco_annotations()]


@pytest.fixture(scope="session")
def coco():
    """List of (annotation, mask) pairs for the shared COCO sample."""
    return list(zip(coco_annotations(), coco_masks()))
