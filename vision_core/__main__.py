"""The command line: ``python -m vision_core``.

Subcommands (each with ``--help``)::

    train ssd   [--epochs 20] [--batch-size 32] [--lr 0.2] [--optimizer sgd|adamw] [--seed 0] [--data-seed 0] [--data DIR]
                [--device auto|cpu|cuda|mps] [--save/--no-save] [--weights-dir DIR]
    detect IMAGE [--threshold 0.9] [--weights tiny_ssd_bananas] [--weights-dir DIR] [--device ...]
    weights list   [--weights-dir DIR]
    weights verify [NAME] [--weights-dir DIR]
    train fcn   [--epochs 5] [--batch-size 32] [--lr 0.001] [--optimizer sgd|adamw] [--crop 320 480] ...
                (also under torchrun: ``torchrun --nproc_per_node=N -m vision_core.fcn ...``)
    segment IMAGE [--weights fcn_resnet18_synthetic] [--out OVERLAY.png] [--device ...]
    stylize CONTENT STYLE --out PNG [--network auto|vgg19|efficientnet_lite0] [--steps N] [--lr X]
                [--content-weight X] [--style-weight X] [--tv-weight X] [--height H] [--balance/--no-balance]
                (CONTENT and STYLE: image files, or the offline examples' names: chelsea, mosaic, ...)
    weights fetch vgg19|resnet18|fcn_resnet50 (torchvision's ImageNet files, into the torch cache; needs internet)
    data bananas   [--out DIR] [--seed 0]
    data voc       --out DIR          (downloads Pascal VOC 2012, 2 GB, checksum-verified)
    data voc-synthetic [--seed 0]     (the offline segmentation set, into the cache)

Ranges are checked here, where input enters; a bad value exits with status 2 and a message
naming the option and its range. Long jobs draw a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

from .device import DEVICE_CHOICES

PROG = "python -m vision_core"


# --- option types: argparse turns ArgumentTypeError into "argument --x: message", status 2 ---

def _int_in(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}], got {text!r}")
        return value
    return parse


def _float_in(name: str, lo: float, hi: float, lo_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = (lo < value if lo_open else lo <= value) and value <= hi  # False for NaN
        if not ok:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {text!r}")
        return value
    return parse


# --- the parser -------------------------------------------------------------------------------

def _add_weights_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                        help="weights registry folder holding manifest.json (default: the project's pretrained/)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run: auto picks cuda > mps > cpu (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m vision_core`` parser with all subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description="Vision Lab's library from the command line: "
                                     "train and run the book's TinySSD, manage weights and data.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train a model", description="Train a model.")
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    ssd = models.add_parser("ssd", help="the book's TinySSD on the synthetic banana data (d2l 14.7)",
                            description="Train TinySSD on the banana data as the book does (SGD, its loss), "
                            "evaluate it on the val split and record it in the weights registry.")
    ssd.add_argument("--epochs", type=_int_in("epochs", 1, 500), default=20, help="1..500 (default: 20)")
    ssd.add_argument("--batch-size", type=_int_in("batch size", 1, 1024), default=32, help="1..1024 (default: 32)")
    ssd.add_argument("--lr", type=_float_in("lr", 0.0, 10.0, lo_open=True), default=0.2,
                     help="learning rate in (0, 10] (default: 0.2, the book's for SGD)")
    ssd.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                     help="sgd is the book's; adamw leaves the all-background plateau sooner (default: sgd)")
    ssd.add_argument("--seed", type=_int_in("seed", 0, 2**31 - 1), default=0,
                     help="seeds the initial weights and the shuffling (default: 0)")
    ssd.add_argument("--data-seed", type=_int_in("data seed", 0, 2**31 - 1), default=0,
                     help="seed of the generated banana data, cached on first use (default: 0)")
    ssd.add_argument("--data", type=Path, default=None, metavar="DIR",
                     help="read this folder in the book's banana-detection layout instead of the cache")
    ssd.add_argument("--init", default=None, metavar="NAME",
                     help="start from these registered weights (sha256-checked) instead of random ones; "
                     "the manifest then records the chain of commands")
    _add_device(ssd)
    ssd.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                     help="record the weights as tiny_ssd_bananas in the registry (default: --save)")
    _add_weights_dir(ssd)
    ssd.set_defaults(func=_cmd_train_ssd)
    # vision_core.fcn owns its options (the same parser runs under torchrun); --help shows them.
    fcn = models.add_parser("fcn", help="the book's FCN on the synthetic VOC set (d2l 14.11); --help for options",
                            add_help=False, prefix_chars="\0")
    fcn.add_argument("options", nargs=argparse.REMAINDER)
    fcn.set_defaults(func=_cmd_train_fcn)

    segment = commands.add_parser("segment", help="segment an image with the trained FCN",
                                  description="Run the registered FCN on an image; print each class's share of "
                                  "the pixels and optionally save the overlay.")
    segment.add_argument("image", type=Path, metavar="IMAGE", help="a PNG, JPEG, GIF or WebP file")
    segment.add_argument("--weights", default="fcn_resnet18_synthetic", metavar="NAME",
                         help="registry name (default: fcn_resnet18_synthetic)")
    segment.add_argument("--out", type=Path, default=None, metavar="PNG", help="write the mask overlay here")
    _add_weights_dir(segment)
    _add_device(segment)
    segment.set_defaults(func=_cmd_segment)

    detect = commands.add_parser("detect", help="detect bananas in an image with the trained TinySSD",
                                 description="Run the registered TinySSD on an image and print one row per "
                                 "detection: class, score, x1, y1, x2, y2 (pixels).")
    detect.add_argument("image", type=Path, metavar="IMAGE", help="a PNG, JPEG, GIF or WebP file")
    detect.add_argument("--threshold", type=_float_in("threshold", 0.0, 1.0), default=0.9,
                        help="minimum score, in [0, 1] (default: 0.9)")
    detect.add_argument("--weights", default="tiny_ssd_bananas", metavar="NAME",
                        help="registry name (default: tiny_ssd_bananas)")
    _add_weights_dir(detect)
    _add_device(detect)
    detect.set_defaults(func=_cmd_detect)

    weights = commands.add_parser("weights", help="list or verify the weights registry",
                                  description="The weights registry (manifest.json).")
    actions = weights.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the registered weights", description="List the registry.")
    _add_weights_dir(listing)
    listing.set_defaults(func=_cmd_weights_list)
    verify = actions.add_parser("verify", help="check files against the manifest's size and sha256",
                                description="Check weight files against the manifest (all when NAME is omitted).")
    verify.add_argument("name", nargs="?", default=None, metavar="NAME", help="one registry name (default: all)")
    _add_weights_dir(verify)
    verify.set_defaults(func=_cmd_weights_verify)

    fetch = actions.add_parser("fetch", help="download torchvision weights the app can use (needs internet)",
                               description="Download torchvision's ImageNet weights into $TORCH_HOME/hub/checkpoints, "
                               "where the app finds them: vgg19 (548 MB, the book's style transfer), resnet18 (45 MB, "
                               "the FCN's trunk), fcn_resnet50 (136 MB, the Segmentation tab's reference model). The "
                               "sha256 prefix in each name is checked. VISION_LAB_OFFLINE=1 forbids it.")
    fetch.add_argument("name", choices=("vgg19", "resnet18", "fcn_resnet50"), help="what to download")
    fetch.set_defaults(func=_cmd_weights_fetch)

    stylize = commands.add_parser("stylize", help="neural style transfer of a photo (d2l 14.12)",
                                  description="Synthesise an image with CONTENT's content and STYLE's style. Options "
                                  "left out take the network's preset (VGG-19: the book's settings).")
    stylize.add_argument("content", metavar="CONTENT", help="an image file, or an offline photo: "
                         "chelsea, astronaut, coffee, rocket")
    stylize.add_argument("style", metavar="STYLE", help="an image file, or an offline style: "
                         "swirl, mosaic, waves, hubble, stain")
    stylize.add_argument("--out", type=Path, required=True, metavar="PNG", help="where to write the result")
    stylize.add_argument("--network", choices=("auto", "vgg19", "efficientnet_lite0"), default="auto",
                         help="feature network (default: auto = VGG-19 if its file is here, else EfficientNet-Lite0)")
    stylize.add_argument("--steps", type=_int_in("steps", 1, 10000), default=None, help="1..10000")
    stylize.add_argument("--lr", type=_float_in("lr", 0.0, 10.0, lo_open=True), default=None, help="(0, 10]")
    for name in ("content", "style", "tv"):
        stylize.add_argument(f"--{name}-weight", type=_float_in(f"{name} weight", 0.0, 1e12, lo_open=True),
                             default=None, help="(0, 1e12]")
    stylize.add_argument("--height", type=_int_in("height", 16, 2048), default=None,
                         help="16..2048; the width follows CONTENT's aspect ratio")
    stylize.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                         help="balance the style layers' starting losses")
    stylize.add_argument("--seed", type=_int_in("seed", 0, 2**31 - 1), default=0, help="(default: 0)")
    _add_device(stylize)
    stylize.set_defaults(func=_cmd_stylize)

    data = commands.add_parser("data", help="generate data sets", description="Generate data sets offline.")
    sets = data.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    bananas = sets.add_parser("bananas", help="the synthetic banana-detection data (1000 train / 100 val)",
                              description="Generate the synthetic banana-detection data in the book's layout. "
                              "Without --out, fill the cache that `train ssd --data-seed SEED` reads "
                              "($VISION_LAB_DATA, default ~/.cache/vision_lab).")
    bananas.add_argument("--out", type=Path, default=None, metavar="DIR", help="folder to write (default: the cache)")
    bananas.add_argument("--seed", type=_int_in("seed", 0, 2**31 - 1), default=0, help="data seed (default: 0)")
    bananas.set_defaults(func=_cmd_data_bananas)
    voc = sets.add_parser("voc", help="download Pascal VOC 2012 (2 GB, needs the network)",
                          description="Download VOCtrainval_11-May-2012.tar, check its SHA-1 and extract it into "
                          "DIR/VOCdevkit/VOC2012 (read by `train fcn --voc-dir`). VISION_LAB_OFFLINE=1 forbids it.")
    voc.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to extract into")
    voc.add_argument("--keep-archive", action="store_true", help="keep the verified .tar after extracting")
    voc.set_defaults(func=_cmd_data_voc)
    synthetic = sets.add_parser("voc-synthetic", help="the offline segmentation set (600 train / 100 val)",
                                description="Generate the synthetic VOC-layout segmentation set into the cache "
                                "that `train fcn` reads ($VISION_LAB_DATA, default ~/.cache/vision_lab).")
    synthetic.add_argument("--seed", type=_int_in("seed", 0, 2**31 - 1), default=0, help="data seed (default: 0)")
    synthetic.set_defaults(func=_cmd_data_voc_synthetic)
    return parser


# --- commands -------------------------------------------------------------------------------

class _CountBar:
    """A ``progress(done, total)`` callback drawing a throttled counter on stderr."""

    def __init__(self, label: str):
        self.label, self.shown = label, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.shown >= 0.2 or done == total:
            self.shown = now
            sys.stderr.write(f"\r{self.label} {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _train_command(args: argparse.Namespace) -> str:
    # The options that decide the weights, all spelled out, so the manifest's command reruns as is.
    parts = ["python", "-m", "vision_core", "train", "ssd", "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--lr", repr(args.lr), "--seed", str(args.seed),
             "--data-seed", str(args.data_seed), "--device", args.device]
    if args.optimizer != "sgd":
        parts += ["--optimizer", args.optimizer]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    if args.init is not None:
        parts += ["--init", args.init]
    return shlex.join(parts)


def _cmd_train_ssd(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from .bananas import load_bananas
    from .device import describe_device, resolve_device
    from .progress import run_with_bar
    from .ssd import TinySSD, evaluate_ssd, save_tiny_ssd, train_ssd

    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    where = str(args.data) if args.data is not None else f"generated, data seed {args.data_seed}"
    print(f"data: banana detection ({where}); device: {describe_device(device)}", file=sys.stderr)
    train = load_bananas(args.data, "train", args.data_seed, progress=_CountBar("generating bananas"))
    val = load_bananas(args.data, "val", args.data_seed)
    torch.manual_seed(args.seed)  # the initial weights
    net = TinySSD(1)
    previous = None
    if args.init is not None:
        from .ssd import load_tiny_ssd
        from .weights import WeightsError

        try:
            net, previous = load_tiny_ssd(args.init, directory=args.weights_dir)
        except WeightsError as err:
            parser.error(f"--init: {err}")
    start = time.perf_counter()
    last = run_with_bar(train_ssd(train, val, net=net, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  optimizer=args.optimizer, device=device, seed=args.seed))
    seconds = time.perf_counter() - start
    try:
        metrics = evaluate_ssd(net, *val, device=device)
    except ImportError as err:
        print(f"note: {err}; reporting the book's metrics only", file=sys.stderr)
        metrics = evaluate_ssd(net, *val, device=device, with_map=False)
    metrics = {**{f"val_{k}": v for k, v in metrics.items()},
               "train_class_err": last.metrics["class_err"], "train_bbox_mae": last.metrics["bbox_mae"],
               "epochs": args.epochs, "train_seconds": round(seconds, 1)}
    for key, value in metrics.items():
        print(f"{key:16s} {value:.4g}")
    if args.save:
        description = (f"TinySSD (d2l 14.7) trained on the synthetic banana data, {args.epochs} epochs "
                       f"on {describe_device(device)} in {seconds:.0f} s")
        command = _train_command(args)
        if previous is not None:  # the whole chain, oldest first, so the file can be made again
            command = f"{previous.source.get('command', '?')} && {command}"
            metrics["epochs"] = previous.metrics.get("epochs", 0) + args.epochs
            metrics["train_seconds"] = round(previous.metrics.get("train_seconds", 0) + seconds, 1)
            description += f", continued from {previous.name} (sha256 {previous.sha256[:12]})"
        entry = save_tiny_ssd(net, metrics, command, args.data_seed, directory=args.weights_dir,
                              description=description)
        folder = args.weights_dir or "pretrained"
        print(f"saved {entry.name}: {folder}/{entry.file} ({entry.bytes:,} bytes, sha256 {entry.sha256[:12]}...)")
    return 0


def _device_and_image(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """``--device`` and the ``IMAGE`` argument as (torch.device, uint8 Tensor[3, H, W]); bad ones exit 2."""
    from torchvision.io import ImageReadMode, decode_image

    from .device import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if not args.image.is_file():
        parser.error(f"IMAGE {str(args.image)!r} is not a file")
    try:
        image = decode_image(str(args.image), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        parser.error(f"IMAGE {str(args.image)!r} could not be decoded as PNG, JPEG, GIF or WebP: {err}")
    return device, image


def _cmd_detect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .ssd import load_tiny_ssd, predict
    from .weights import WeightsError

    device, image = _device_and_image(args, parser)
    try:
        net, entry = load_tiny_ssd(args.weights, args.weights_dir, device=device)
    except WeightsError as err:
        print(f"error: {err}\nTrain and register them with: {PROG} train ssd", file=sys.stderr)
        return 1
    rows = predict(net, image, threshold=args.threshold)[0]
    print(f"# {args.image} ({image.shape[2]} x {image.shape[1]}), weights {entry.name}, score >= {args.threshold:g}")
    print("class score x1 y1 x2 y2")
    for cls, score, x1, y1, x2, y2 in rows.tolist():
        print(f"{int(cls)} {score:.4f} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}")
    if not len(rows):
        print(f"# no detections with score >= {args.threshold:g}")
    return 0


def _cmd_weights_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .weights import WeightsError, list_weights

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


def _cmd_weights_verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .weights import WeightsError, list_weights, verify_weights

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


def _cmd_data_bananas(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .bananas import generate_bananas, load_bananas

    bar = _CountBar("generating bananas")
    if args.out is not None:
        root = generate_bananas(args.out, seed=args.seed, progress=bar)
        print(f"wrote {root}/bananas_train and {root}/bananas_val")
    else:
        # load_bananas generates the cache only when it is missing; reading one split checks it.
        images, _ = load_bananas(None, "val", seed=args.seed, progress=bar)
        print(f"banana data with seed {args.seed} is cached ($VISION_LAB_DATA, default ~/.cache/vision_lab); "
              f"val has {len(images)} images")
    return 0


def _cmd_train_fcn(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .fcn import ddp_main

    return ddp_main(args.options)


def _cmd_segment(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch
    from PIL import Image

    from .fcn import load_fcn, overlay_mask, predict_fcn
    from .voc import VOC_CLASSES
    from .weights import WeightsError

    device, image = _device_and_image(args, parser)
    try:
        net, _ = load_fcn(args.weights, directory=args.weights_dir, device=device)
    except WeightsError as err:
        print(f"{PROG} segment: {err}", file=sys.stderr)
        print("train one with: python -m vision_core train fcn --save fcn_resnet18_synthetic", file=sys.stderr)
        return 1
    pred = predict_fcn(net, image)  # [H, W]
    counts = torch.bincount(pred.flatten(), minlength=len(VOC_CLASSES))
    for index in counts.nonzero().flatten().tolist():
        print(f"{VOC_CLASSES[index]:14s} {counts[index].item() / pred.numel():7.2%}")
    if args.out is not None:
        Image.fromarray(overlay_mask(image, pred)).save(args.out)
        print(f"wrote {args.out}")
    return 0


def _read_picture(text: str, examples, load, what: str, parser: argparse.ArgumentParser):
    """An image file, or an offline example by name, as ``uint8 [H, W, 3]``; anything else exits 2."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(text)
    if path.is_file():
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            parser.error(f"{what} {text!r} could not be read as an image: {err}")
    if text in examples:
        return load(text)
    parser.error(f"{what} {text!r} is neither an image file nor one of: {', '.join(examples)}")


def _cmd_stylize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from PIL import Image

    from .device import describe_device, resolve_device
    from .examples import CONTENT_PHOTOS, STYLE_IMAGES, load_content_photo, load_style_image
    from .progress import run_with_bar
    from .style import load_style_network, style_transfer
    from .weights import WeightsError

    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    content = _read_picture(args.content, CONTENT_PHOTOS, load_content_photo, "CONTENT", parser)
    style = _read_picture(args.style, STYLE_IMAGES, load_style_image, "STYLE", parser)
    try:
        taps, spec = load_style_network(args.network)
    except WeightsError as err:
        print(f"{PROG} stylize: {err}", file=sys.stderr)
        return 1
    settings = dict(spec.preset)
    for key, value in (("steps", args.steps), ("lr", args.lr), ("content_weight", args.content_weight),
                       ("style_weight", args.style_weight), ("tv_weight", args.tv_weight),
                       ("balance_style_layers", args.balance)):
        if value is not None:
            settings[key] = value
    height = args.height or settings["image_shape"][0]
    h, w = content.shape[:2]
    settings["image_shape"] = (height, max(16, min(2048, round(height * w / h))))
    print(f"network: {spec.label}; {settings['steps']} steps at {settings['image_shape'][0]} x "
          f"{settings['image_shape'][1]}; device: {describe_device(device)}", file=sys.stderr)
    try:
        last = run_with_bar(style_transfer(content, style, taps, device=device, seed=args.seed, **settings))
    except ValueError as err:
        parser.error(str(err))
    Image.fromarray(last.preview).save(args.out)
    print(f"{last.message}; wrote {args.out}")
    return 0 if last.message.startswith("done") else 1


def _cmd_weights_fetch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .fcn import FCN_RESNET50_SHA256_PREFIX, RESNET18_IMAGENET_SHA256_PREFIX
    from .progress import run_with_bar
    from .style import VGG19_FILE
    from .weights import WeightsError, download_torchvision_checkpoint

    file = {"vgg19": VGG19_FILE, "resnet18": f"resnet18-{RESNET18_IMAGENET_SHA256_PREFIX}.pth",
            "fcn_resnet50": f"fcn_resnet50_coco-{FCN_RESNET50_SHA256_PREFIX}.pth"}[args.name]
    try:
        last = run_with_bar(download_torchvision_checkpoint(file))
    except WeightsError as err:
        print(f"\n{PROG} weights fetch: {err}", file=sys.stderr)
        return 1
    print(last.message)
    return 0


def _cmd_data_voc(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .voc import download_voc

    try:
        folder = download_voc(args.out, progress=_CountBar("VOC 2012"), keep_archive=args.keep_archive)
    except ValueError as err:  # VOCDownloadError: offline, network, checksum or an unsafe archive
        print(f"\n{PROG} data voc: {err}", file=sys.stderr)
        return 1
    print(f"\nVOC 2012 is in {folder}; train on it with: python -m vision_core train fcn --voc-dir {folder}")
    return 0


def _cmd_data_voc_synthetic(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .voc import synthetic_voc_dir

    folder = synthetic_voc_dir(args.seed, progress=_CountBar("generating the segmentation set"))
    print(f"\nthe synthetic segmentation set with seed {args.seed} is in {folder}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, parser)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
