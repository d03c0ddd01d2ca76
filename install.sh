#!/usr/bin/env bash
# Create .venv and install kcnn with everything it needs (PyTorch CPU build pinned to 2.13.0).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "kcnn installed in .venv: activate it with '. .venv/bin/activate'"
