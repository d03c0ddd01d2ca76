"""Entry point of the `kcnn` command."""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from types import FrameType
from typing import NoReturn

from kcnn import __version__
from kcnn.errors import KcnnError
from kcnn.threads import available_cores, limit_threads

COMMANDS = {
    "train": ("train", "train a model on a labelled collection"),
    "predict": ("predict", "predict the label of songs"),
    "evaluate": ("evaluate", "score a model on a labelled collection"),
    "embed": ("embed", "write song-level representations"),
    "extract": ("extract", "compute and cache frame features"),
    "index": ("index", "build or update a similarity index of songs"),
    "similar": ("similar", "find the songs most similar to a song"),
    "cluster": ("cluster", "group the songs of an index"),
    "map": ("maps", "draw a 2-D map of the songs of an index"),
    "serve": ("serve", "serve a web page to try a model"),
    "benchmark": ("benchmark", "compare KCNN and its competitors as in the paper"),
}
"""Sub-command -> its module in kcnn.cli (imported only when the command is used, so that
`kcnn --help` answers at once) and its one-line summary."""


class Parser(argparse.ArgumentParser):
    """An argument parser (and its sub-commands' parsers) whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """kcnn's parser, with the options of the sub-commands in `only` (default: all); the
    others are listed with their summary but take no options."""
    parser = Parser(
        prog="kcnn",
        description="Learn what music sounds like: audio words, a k-max pooling CNN, an SVM.",
    )
    parser.add_argument("--version", action="version", version=f"kcnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if only is None or name in only:
            sub = import_module(f"kcnn.cli.{module}").add_parser(commands, name, summary)
            import_module("kcnn.cli.common").add_threads_option(sub)
        else:
            commands.add_parser(name, help=summary)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived (kill, timeout, a service manager): kcnn ends as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends kcnn at once
    # the worker processes first, so that nothing waits for the models they are fitting
    for child in multiprocessing.active_children():
        child.terminate()
    raise Terminated


@contextmanager
def terminable() -> Iterator[None]:
    """Inside, SIGTERM ends this process's worker processes and raises `Terminated` in the
    main thread, so that what is being written is cleaned up as after Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; a user error prints one line and returns 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=argv[:1]).parse_args(argv)
    # kcnn's own process computes alone: all cores, or what its command says it can use
    limit_threads(args.threads or getattr(args, "own_threads", None) or available_cores())
    try:
        with terminable():
            return args.run(args)
    except KcnnError as err:
        print(f"kcnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kcnn: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("kcnn: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
