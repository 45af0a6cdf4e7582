#!/usr/bin/env bash
# The whole test suite on a fresh machine: make .venv if needed, install the package with its test
# and docs tooling, run pytest with the Numba JIT, again with NUMBA_DISABLE_JIT=1 (so coverage sees
# inside the kernels), then build the docs with strict warnings.  Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check \
    -e ".[dev]" -r requirements/test-extra.txt -c requirements/constraints.txt

# pytest exits 5 when it collects nothing; that is not a failure of the code.
pytest_run() {
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi
    return "$rc"
}

echo "== pytest (JIT on)"
pytest_run .venv/bin/python -m pytest "$@"

echo "== pytest (NUMBA_DISABLE_JIT=1, coverage of kernel code)"
NUMBA_DISABLE_JIT=1 pytest_run .venv/bin/python -m pytest -q -m "not slow_without_jit" \
    --cov=maskcodec --cov-report=term:skip-covered -p no:randomly "$@"

echo "== docs (mkdocs --strict)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
