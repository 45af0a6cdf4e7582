#!/usr/bin/env bash
# One command from a fresh clone to a working maskcodec: make .venv if it is missing, install the
# package (editable, with the pinned constraints), then run `maskcodec demo`, which encodes a bundled
# real COCO mask as Text4Seg text, prints it, decodes it back and prints the IoU and the text length.
# Extra arguments go to `maskcodec demo` (e.g. `bash scripts/demo.sh --index 0 --grid 24`).
# PYTHON=/path/to/python3.X picks the interpreter that builds .venv (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        echo "demo.sh: maskcodec needs Python >= 3.10; '$PY' is $("$PY" --version 2>/dev/null || echo 'not found')." >&2
        echo "demo.sh: run it as PYTHON=python3.11 bash scripts/demo.sh" >&2
        exit 1
    fi
    echo "== creating .venv with $("$PY" --version 2>&1)"
    if ! "$PY" -m venv .venv; then
        rm -rf .venv
        echo "demo.sh: '$PY -m venv' failed; on Debian/Ubuntu install the venv module" \
             "(apt install python3-venv) and run this again." >&2
        exit 1
    fi
fi
# Install only when the package is not importable from .venv yet (a fresh clone), so a second
# run starts at once.
if ! .venv/bin/python -c "import maskcodec, numba, pycocotools" 2>/dev/null \
        || [ ! -x .venv/bin/maskcodec ]; then
    echo "== installing maskcodec into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e . -c requirements/constraints.txt
fi
echo "== maskcodec demo"
exec .venv/bin/maskcodec demo "$@"
