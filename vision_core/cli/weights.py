"""``python -m vision_core weights list | verify | fetch``: the weights registry and torchvision's files."""

from __future__ import annotations

import argparse
import sys

from ._common import PROG, add_weights_dir

__all__ = ["add_parsers"]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``weights list``, ``weights verify [NAME]`` and ``weights fetch NAME``."""
    weights = commands.add_parser("weights", help="list or verify the weights registry",
                                  description="The weights registry (manifest.json).")
    actions = weights.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the registered weights", description="List the registry.")
    add_weights_dir(listing)
    listing.set_defaults(func=_cmd_list)
    verify = actions.add_parser("verify", help="check files against the manifest's size and sha256",
                                description="Check weight files against the manifest (all when NAME is omitted).")
    verify.add_argument("name", nargs="?", default=None, metavar="NAME", help="one registry name (default: all)")
    add_weights_dir(verify)
    verify.set_defaults(func=_cmd_verify)
    fetch = actions.add_parser("fetch", help="download torchvision weights the app can use (needs internet)",
                               description="Download torchvision's ImageNet weights into $TORCH_HOME/hub/checkpoints, "
                               "where the app finds them: vgg19 (548 MB, the book's style transfer), resnet18 (45 MB, "
                               "the FCN's trunk), fcn_resnet50 (136 MB, the Segmentation tab's reference model). The "
                               "sha256 prefix in each name is checked. VISION_LAB_OFFLINE=1 forbids it.")
    fetch.add_argument("name", choices=("vgg19", "resnet18", "fcn_resnet50"), help="what to download")
    fetch.set_defaults(func=_cmd_fetch)


def _cmd_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..weights import WeightsError, list_weights

    try:
        entries = list_weights(args.weights_dir)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not entries:
        print("no weights registered")
    for e in entries:
        print(f"{e.name}  {e.file}  {e.bytes:,} bytes  {e.format}  {e.license}")
    return 0


def _cmd_verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..weights import WeightsError, list_weights, verify_weights

    try:
        names = [args.name] if args.name else [e.name for e in list_weights(args.weights_dir)]
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        try:
            print(f"ok      {name}  {verify_weights(name, args.weights_dir)}")
        except WeightsError as err:
            failed += 1
            print(f"FAILED  {name}: {err}")
    if not names:
        print("no weights registered")
    return 1 if failed else 0


def _cmd_fetch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..models.fcn import FCN_RESNET50_SHA256_PREFIX, RESNET18_IMAGENET_SHA256_PREFIX
    from ..progress import run_with_bar
    from ..models.style_networks import VGG19_FILE
    from ..weights import WeightsError, download_torchvision_checkpoint

    file = {"vgg19": VGG19_FILE, "resnet18": f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth",
            "fcn_resnet50": f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"}[args.name]
    try:
        last = run_with_bar(download_torchvision_checkpoint(file))
    except WeightsError as err:
        print(f"\n{PROG} weights fetch: {err}", file=sys.stderr)
        return 1
    print(last.message)
    return 0
