"""The finished work of a benchmark, kept in REPORT/state.json so that a re-run resumes.

The file is rewritten atomically after each fitted model. It records what the results
depend on (the kcnn version and the settings) and the songs (path and label); a re-run
with another version, other settings or other songs is refused, never mixed in. More
runs, methods or feature sets may be added: finished units are skipped and only the
missing ones are computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kcnn.atomic import OutputKind, json_marker, write_text
from kcnn.benchmark.methods import Outcome
from kcnn.errors import KcnnError

FORMAT = 2
REPORT = OutputKind("kcnn benchmark report", json_marker("state.json", "format"))
"""A benchmark report folder: state.json holds a format."""


def unit_key(run: int, fold: int, features: str) -> str:
    """The key of one unit of work: a run, a fold of it, and a feature set."""
    return f"{run}/{fold}/{features}"


def _plain(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


class BenchmarkState:
    """Per unit: the test songs, predictions per method, and seconds and loss per model.

    key: what the results depend on (version, settings); songs: (path, label) of every song, in the
    order fold indices refer to. With `restart`, a previous state at `path` is discarded.
    """

    def __init__(
        self, path: Path, key: dict[str, Any], songs: list[tuple[str, str]], restart: bool
    ) -> None:
        self.path = path
        fresh = {"format": FORMAT, "key": _plain(key), "songs": _plain(songs), "units": {}}
        if restart or not path.exists():
            self.data = fresh
            return
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise KcnnError(f"{path}: unreadable ({err}); use --restart to start over") from err
        _check_compatible(path, stored, fresh)
        self.data = stored

    @property
    def units(self) -> dict[str, dict[str, Any]]:
        return self.data["units"]

    def done(self, run: int, fold: int, features: str, group: str) -> bool:
        """True if `group` was already fitted and scored on this unit."""
        unit = self.units.get(unit_key(run, fold, features), {})
        return group in unit.get("groups", {})

    def record(
        self,
        run: int,
        fold: int,
        features: str,
        test: np.ndarray,
        outcome: Outcome,
    ) -> None:
        """Add one group's outcome on a unit (call `save` to write it)."""
        unit = self.units.setdefault(
            unit_key(run, fold, features),
            {"test": [int(i) for i in test], "groups": {}, "predictions": {}},
        )
        if outcome.words_seconds is not None:
            unit["words_seconds"] = outcome.words_seconds
        unit["groups"][outcome.group] = {
            "seconds": outcome.seconds,
            "loss_curve": outcome.loss_curve,
        }
        unit["predictions"].update(outcome.predictions)

    def save(self) -> None:
        write_text(self.path, json.dumps(self.data))


def _check_compatible(path: Path, stored: dict, fresh: dict) -> None:
    """Raise KcnnError naming what differs if `stored` cannot be resumed with `fresh`."""
    hint = "use another --out, or --restart to discard it"
    if stored.get("format") != FORMAT:
        raise KcnnError(f"{path}: written by another kcnn version; {hint}")
    old, new = stored.get("key", {}), fresh["key"]
    differ = [
        f"{name}: {old.get(name)!r} there, {new.get(name)!r} here"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
    if differ:
        raise KcnnError(
            f"{path} holds a benchmark with other settings ({'; '.join(differ)}); {hint}"
        )
    if stored.get("songs") != fresh["songs"]:
        raise KcnnError(
            f"{path} holds a benchmark of other songs ({len(stored.get('songs', []))} there, "
            f"{len(fresh['songs'])} here); {hint}"
        )
