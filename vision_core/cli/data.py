"""``python -m vision_core data bananas | voc | voc-synthetic``: the chapter's data sets, made or fetched."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import FAILED, PROG, CommandError, CountBar, add_seed, check_out_folder

__all__ = ["add_parsers"]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``data bananas``, ``data voc`` and ``data voc-synthetic``."""
    data = commands.add_parser("data", help="generate data sets", description="Generate data sets offline.")
    sets = data.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    bananas = sets.add_parser("bananas", help="the synthetic banana-detection data (1000 train / 100 val)",
                              description="Generate the synthetic banana-detection data in the book's layout. "
                              "Without --out, fill the cache that `train ssd --data-seed SEED` reads "
                              "($VISION_LAB_DATA, default ~/.cache/vision_lab).")
    bananas.add_argument("--out", type=Path, default=None, metavar="DIR", help="folder to write (default: the cache)")
    add_seed(bananas, help_text="data seed (default: 0)")
    bananas.set_defaults(func=_cmd_bananas)
    voc = sets.add_parser("voc", help="download Pascal VOC 2012 (2 GB, needs the network)",
                          description="Download VOCtrainval_11-May-2012.tar, check its SHA-1 and extract it into "
                          "DIR/VOCdevkit/VOC2012 (read by `train fcn --voc-dir`). VISION_LAB_OFFLINE=1 forbids it.")
    voc.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to extract into")
    voc.add_argument("--keep-archive", action="store_true", help="keep the verified .tar after extracting")
    voc.set_defaults(func=_cmd_voc)
    synthetic = sets.add_parser("voc-synthetic", help="the offline segmentation set (600 train / 100 val)",
                                description="Generate the synthetic VOC-layout segmentation set into the cache "
                                "that `train fcn` reads ($VISION_LAB_DATA, default ~/.cache/vision_lab).")
    add_seed(synthetic, help_text="data seed (default: 0)")
    synthetic.set_defaults(func=_cmd_voc_synthetic)


def _cmd_bananas(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..data.bananas import generate_bananas, load_bananas

    bar = CountBar("generating bananas")
    if args.out is not None:
        check_out_folder(args.out, "--out", parser)
        try:
            root = generate_bananas(args.out, seed=args.seed, progress=bar)
        except OSError as err:
            raise CommandError(f"data bananas: writing {str(args.out)!r} failed: {err}", FAILED) from None
        print(f"wrote {root}/bananas_train and {root}/bananas_val")
    else:
        # load_bananas generates the cache only when it is missing; reading one split checks it.
        try:
            images, _ = load_bananas(None, "val", seed=args.seed, progress=bar)
        except OSError as err:
            raise CommandError(f"data bananas: writing the cache failed: {err}", FAILED) from None
        print(f"banana data with seed {args.seed} is cached ($VISION_LAB_DATA, default ~/.cache/vision_lab); "
              f"val has {len(images)} images")
    return 0


def _cmd_voc(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..data.downloads import download_voc

    check_out_folder(args.out, "--out", parser)
    try:
        folder = download_voc(args.out, progress=CountBar("VOC 2012"), keep_archive=args.keep_archive)
    except ValueError as err:  # VOCDownloadError: offline, network, checksum or an unsafe archive
        print(f"\n{PROG} data voc: {err}", file=sys.stderr)
        return 1
    print(f"\nVOC 2012 is in {folder}; train on it with: {PROG} train fcn --voc-dir {folder}")
    return 0


def _cmd_voc_synthetic(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..data.voc_synthetic import synthetic_voc_dir

    folder = synthetic_voc_dir(args.seed, progress=CountBar("generating the segmentation set"))
    print(f"\nthe synthetic segmentation set with seed {args.seed} is in {folder}")
    return 0
