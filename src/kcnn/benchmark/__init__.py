"""The paper's evaluation (section 4): every method on every feature set, under a protocol
(`kcnn.benchmark.runner.run_benchmark`)."""
