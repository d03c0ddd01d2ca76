"""The final model of `kcnn train`, fitted on every song in a second process while the
held-out model trains.

The final model trains for as many epochs as early stopping chooses for the held-out one,
which is known only when that one is done. Run one after the other, the two take twice as
long; run side by side (a network trains no faster on two threads than on one), the final
fit runs an epoch only once the held-out fit's best epoch has got that far (its best epoch
only ever moves on), and stops at the one early stopping chose: the model is the one a
fit after the held-out one would give.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.context import SpawnContext
from types import TracebackType

from kcnn.audio import MAX_DURATION
from kcnn.config import ModelConfig
from kcnn.errors import KcnnError
from kcnn.extraction import Features
from kcnn.model import MusicModel, make_pipeline
from kcnn.spawned import start_worker

POLL_SECONDS = 0.05
"""How often a waiting final fit looks whether it may go on."""


def final_config(config: ModelConfig, epochs: int) -> ModelConfig:
    """`config` for the final model: `epochs` epochs, no song held out for validation."""
    return replace(config, kcnn=replace(config.kcnn, epochs=epochs, validation_fraction=0.0))


class EpochGate:
    """How many epochs the final fit may run, shared between the two processes."""

    def __init__(self, context: SpawnContext) -> None:
        self._allowed = context.Value("i", 1)  # every fit has a best epoch: the first, at least
        self._settled = context.Event()

    def publish(self, epoch: int, best_epoch: int) -> bool:
        """The held-out fit's `after_epoch`: its best epoch so far may be run."""
        self._allowed.value = best_epoch + 1
        return True

    def settle(self, epochs: int) -> None:
        """The held-out fit is done: the final fit runs `epochs` epochs in all."""
        self._allowed.value = epochs
        self._settled.set()

    def may_go_on(self, epoch: int, best_epoch: int) -> bool:
        """The final fit's `after_epoch`: wait until epoch + 1 may be run, or is known not to be."""
        while self._allowed.value < epoch + 2 and not self._settled.wait(POLL_SECONDS):
            pass
        return self._allowed.value >= epoch + 2


class FinalFit:
    """`config`'s model, fitted on `features` and `labels` without validation songs, in a
    process of its own (on `threads` threads) that starts at once; `result` gives it. The
    held-out fit passes `gate.publish` as its `after_epoch`."""

    def __init__(
        self,
        config: ModelConfig,
        seed: int,
        device: str,
        features: Sequence[Features],
        labels: Sequence[str],
        threads: int = 1,
        max_duration: float = MAX_DURATION,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process running threads
        self.gate = EpochGate(context)
        self._results = context.SimpleQueue()
        final = final_config(config, config.kcnn.epochs)  # the gate says when to stop
        task = (final, seed, device, max_duration, features, labels, threads, os.getpid())
        self._process = context.Process(
            target=_fit, args=(*task, self.gate, self._results), daemon=True
        )
        self._process.start()

    def result(self, epochs: int) -> MusicModel:
        """The final model, once it has trained `epochs` epochs (as chosen by the held-out
        fit); re-raises what the fit raised."""
        self.gate.settle(epochs)
        while self._results.empty():
            if not self._process.is_alive() and self._results.empty():
                raise KcnnError(
                    f"the process fitting the final model ended (exit code "
                    f"{self._process.exitcode}) without a model; --no-refit writes the "
                    "held-out model instead"
                )
            time.sleep(POLL_SECONDS)
        outcome = pickle.loads(self._results.get())
        self._process.join()
        if isinstance(outcome, BaseException):
            raise outcome
        outcome.pipeline.set_params(kcnn__epochs=epochs)  # its config: final_config(..., epochs)
        return outcome

    def __enter__(self) -> FinalFit:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _fit(
    config: ModelConfig,
    seed: int,
    device: str,
    max_duration: float,
    features: Sequence[Features],
    labels: Sequence[str],
    threads: int,
    parent: int,
    gate: EpochGate,
    results: multiprocessing.SimpleQueue,
) -> None:
    """The final fit's process: the fitted model (or the error), pickled, into `results`;
    it ends with `parent`, the training's process."""
    start_worker(threads, parent)
    try:
        model = MusicModel(make_pipeline(config, seed, device=device, max_duration=max_duration))
        outcome: object = model.fit(features, labels, after_epoch=gate.may_go_on)
    except Exception as err:  # handed to the parent, which raises it
        outcome = err
    try:
        message = pickle.dumps(outcome)
    except Exception as err:  # an error that does not pickle
        message = pickle.dumps(RuntimeError(f"final fit: {err}: {outcome}"))
    results.put(message)
