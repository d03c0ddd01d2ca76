#!/usr/bin/env bash
# Create .venv and install kcnn with exactly the tested versions of everything it needs
# (requirements.lock, hashed; PyTorch is the CPU build 2.13.0).
# Refresh the lock after changing dependencies in pyproject.toml:
#   pip-compile --extra dev --generate-hashes --strip-extras --allow-unsafe \
#     --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --require-hashes --no-deps -r requirements.lock
"${pip[@]}" install --no-deps --no-build-isolation -e .
# compile k-max pooling's CPU kernel once (about 8 s; numba caches it beside the module)
.venv/bin/python -c "import torch; from kcnn.kmax import kmax_pool; kmax_pool(torch.ones(1, 1, 2), 1)"
echo "kcnn installed in .venv: activate it with '. .venv/bin/activate'"
