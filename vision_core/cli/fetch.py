"""``python -m vision_core fetch NAME ... | all``: the book's data and weights, from one place."""

from __future__ import annotations

import argparse
import sys

from ._common import FAILED, PROG

__all__ = ["add_parsers"]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``fetch NAME [NAME ...]`` (or ``all``)."""
    from ..fetch import ASSETS

    listing = "; ".join(f"{a.name}: {a.title}, {a.size}" for a in ASSETS.values())
    fetch = commands.add_parser(
        "fetch", help="download the book's data and weights (needs internet)",
        description=f"Download, check and unpack into the caches the app reads: {listing}. A broken download "
        "resumes on the next run. VISION_LAB_OFFLINE=1 forbids it.")
    fetch.add_argument("names", nargs="+", choices=(*ASSETS, "all"), metavar="NAME",
                       help=f"one or more of {', '.join(ASSETS)}, or all")
    fetch.set_defaults(func=_cmd_fetch)


def _cmd_fetch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..fetch import ASSETS, fetch_records, fetched
    from ..progress import run_with_bar

    names = list(ASSETS) if "all" in args.names else list(dict.fromkeys(args.names))
    failed = 0
    for name in names:
        try:
            run_with_bar(fetch_records(name))
            print(f"{name}: {fetched(name)}")
        except ValueError as err:  # offline, network, checksum or an unsafe archive: the next name still runs
            failed += 1
            print(f"{PROG} fetch {name}: {err}", file=sys.stderr)
    return FAILED if failed else 0
