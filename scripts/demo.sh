#!/usr/bin/env bash
# One command from a fresh clone to a working maskcodec: make .venv if it is missing, install the
# package (editable, with the pinned constraints), then run `maskcodec demo`, which encodes a bundled
# real COCO mask as Text4Seg text, prints it, decodes it back and prints the IoU and the text length.
# Extra arguments go to `maskcodec demo` (e.g. `bash scripts/demo.sh --index 0 --grid 24`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $("$PY" --version 2>&1)"
    "$PY" -m venv .venv
fi
# Reinstall only when the package is not importable from .venv yet (a fresh clone), so a second
# run starts at once.
if ! .venv/bin/python -c "import maskcodec, numba, pycocotools" 2>/dev/null \
        || [ ! -x .venv/bin/maskcodec ]; then
    echo "== installing maskcodec into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e . -c requirements/constraints.txt
fi
echo "== maskcodec demo"
exec .venv/bin/maskcodec demo "$@"
