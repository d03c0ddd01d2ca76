"""The paper's evaluation (section 4): every method on every feature set, under a protocol."""

from kcnn.benchmark.methods import FEATURE_SETS, METHODS, MethodSettings
from kcnn.benchmark.runner import BenchmarkResult, BenchmarkSettings, run_benchmark

__all__ = [
    "FEATURE_SETS",
    "METHODS",
    "BenchmarkResult",
    "BenchmarkSettings",
    "MethodSettings",
    "run_benchmark",
]
