"""Entry point of the `kcnn` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from kcnn import __version__
from kcnn.cli import (
    benchmark,
    cluster,
    embed,
    evaluate,
    extract,
    index,
    maps,
    predict,
    serve,
    similar,
    train,
)
from kcnn.cli.common import add_threads_option
from kcnn.errors import KcnnError
from kcnn.threads import available_cores, limit_threads

COMMANDS = (
    train,
    predict,
    evaluate,
    embed,
    extract,
    index,
    similar,
    cluster,
    maps,
    serve,
    benchmark,
)


class Parser(argparse.ArgumentParser):
    """An argument parser (and its sub-commands' parsers) whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kcnn",
        description="Learn what music sounds like: audio words, a k-max pooling CNN, an SVM.",
    )
    parser.add_argument("--version", action="version", version=f"kcnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    for sub_command in commands.choices.values():
        add_threads_option(sub_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; a user error prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    # kcnn's own process computes alone: all cores, or what its command says it can use
    limit_threads(args.threads or getattr(args, "own_threads", None) or available_cores())
    try:
        return args.run(args)
    except KcnnError as err:
        print(f"kcnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kcnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
