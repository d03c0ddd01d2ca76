"""`kcnn serve MODEL [--index INDEX]`: a web page to try a model on your own songs.

Drop an audio file on the page to see its predicted genre with the class probabilities
and, with an index (built with the same model), the most similar songs of the collection
and where the song falls on its map. Serves on 127.0.0.1 (this machine only) by default,
and answers only requests addressed (Host header) to this machine's names, to the --host
address, or to a name given with --allow-host.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from kcnn.cli.common import add_device_option, add_duration_option, positive_float
from kcnn.config import CLASSIFIERS, DEFAULT_CLASSIFIER
from kcnn.web import LOCAL_HOSTS, MAX_UPLOAD_BYTES


def add_parser(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=summary, description=__doc__)
    p.add_argument("model", type=Path, help="model folder written by 'kcnn train'")
    p.add_argument("--index", type=Path, default=None, help="index folder written by 'kcnn index'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name or address the page is reached by (repeatable)",
    )
    p.add_argument(
        "--classifier",
        choices=CLASSIFIERS,
        default=DEFAULT_CLASSIFIER,
        help=f"the network's softmax or the SVM (default {DEFAULT_CLASSIFIER})",
    )
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=MAX_UPLOAD_BYTES / 2**20,
        help=f"largest upload in MB (default {MAX_UPLOAD_BYTES / 2**20:.0f})",
    )
    add_device_option(p)
    add_duration_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from kcnn.index import SongIndex
    from kcnn.model import MusicModel
    from kcnn.web.app import create_app

    model = MusicModel.load(args.model, args.device)
    index = None
    if args.index is not None:
        index = SongIndex.load(args.index)
        index.check_model(args.model)
    hosts = {*LOCAL_HOSTS, socket.gethostname(), args.host, *args.allow_host}
    app = create_app(
        model,
        index,
        args.classifier,
        int(args.max_upload_mb * 2**20),
        args.max_duration * 60,
        hosts,
    )
    print(f"kcnn: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
