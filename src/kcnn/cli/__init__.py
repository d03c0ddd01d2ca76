"""The `kcnn` command line: one module per sub-command."""

import os

# Idle OpenMP threads sleep rather than spin on cores that other processes need; the
# OpenMP runtime reads this once, when PyTorch or scikit-learn loads it (kcnn.threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
