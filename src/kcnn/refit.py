"""The final model of `kcnn train`, fitted on every song in a second process while the
held-out model trains.

The final model makes as many updates as early stopping chose for the held-out one (the
rule of Goodfellow et al., *Deep Learning*, algorithm 7.2): an epoch of every song is
longer than one of the held-out fit's songs, so it trains for proportionally fewer epochs.
That number is known only when the held-out fit is done. Run one after the other, the two
take twice as long; run side by side (a network trains no faster on two threads than on
one), the final fit runs an epoch only once the held-out fit's best epoch has got that far
(its best epoch only ever moves on), and stops where early stopping chose: the model is the
one a fit after the held-out one would give.
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


def final_epochs(passes: int, songs: int) -> int:
    """Epochs of `songs` songs that make about as many updates as `passes` song passes (an
    epoch of the held-out fit's n songs is n passes), at least one."""
    return max(1, round(passes / songs))


def final_config(config: ModelConfig, epochs: int) -> ModelConfig:
    """`config` for the final model: `epochs` epochs, no song held out for validation."""
    return replace(config, kcnn=replace(config.kcnn, epochs=epochs, validation_fraction=0.0))


class EpochGate:
    """How far the final fit may train, in song passes, shared between the two processes."""

    def __init__(self, context: SpawnContext) -> None:
        self._passes = context.Value("q", 0)  # every fit makes one epoch at least
        self._settled = context.Event()

    def publish(self, epoch: int, best_epoch: int, songs: int) -> bool:
        """The held-out fit's `after_epoch`: as far as its best epoch so far may be run."""
        self._passes.value = (best_epoch + 1) * songs
        return True

    def settle(self, passes: int) -> None:
        """The held-out fit is done: the final fit goes as far as `passes` song passes."""
        self._passes.value = passes
        self._settled.set()

    def may_go_on(self, epoch: int, best_epoch: int, songs: int) -> bool:
        """The final fit's `after_epoch`: wait until epoch + 1 may be run, or is known not to be."""

        def allowed() -> bool:
            return final_epochs(self._passes.value, songs) >= epoch + 2

        while not allowed() and not self._settled.wait(POLL_SECONDS):
            pass
        return allowed()


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

    def result(self, passes: int) -> MusicModel:
        """The final model, once it has gone as far as `passes` song passes (as chosen by the
        held-out fit); re-raises what the fit raised."""
        self.gate.settle(passes)
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
        epochs = final_epochs(passes, outcome.n_songs)
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
