"""``python -m vision_core train ssd`` and ``detect``: the book's TinySSD on the banana data (d2l 14.7)."""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import sys
import time
from pathlib import Path

from ._common import (FAILED, PROG, CommandError, CountBar, add_device, add_image_command, add_seed, add_weights_dir,
                      check_out_folder, device_and_image, float_in, int_in, resolve_or_exit)

__all__ = ["TRAINED_NAME", "add_train_parser", "add_detect_parser"]

# `train ssd` saves under this registry name unless told otherwise: never the shipped
# tiny_ssd_bananas, which the app and `detect` use by default.
TRAINED_NAME = "tiny_ssd_trained"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a registry name is also a file name


def add_train_parser(models: argparse._SubParsersAction) -> None:
    """``train ssd``."""
    ssd = models.add_parser("ssd", help="the book's TinySSD on the synthetic banana data (d2l 14.7)",
                            description="Train TinySSD on the banana data as the book does (SGD, its loss), "
                            "evaluate it on the val split and record it in the weights registry.")
    ssd.add_argument("--epochs", type=int_in("epochs", 1, 500), default=20, help="1..500 (default: 20)")
    ssd.add_argument("--batch-size", type=int_in("batch size", 1, 1024), default=32, help="1..1024 (default: 32)")
    ssd.add_argument("--lr", type=float_in("lr", 0.0, 10.0, lo_open=True), default=0.2,
                     help="learning rate in (0, 10] (default: 0.2, the book's for SGD)")
    ssd.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                     help="sgd is the book's; adamw leaves the all-background plateau sooner (default: sgd)")
    ssd.add_argument("--augment", action="store_true",
                     help="augment each training batch as SSD does: random zoom-out, crops that keep every banana, "
                     "horizontal flips and colour changes (vision_core.data.augment), seeded by --seed; the book "
                     "trains without (default: off)")
    ssd.add_argument("--background-crops", type=float_in("background crops", 0.0, 1.0), default=0.0, metavar="P",
                     help="with --augment, this share of the training samples becomes a banana-free window of its own "
                     "picture, so the network also sees pictures with nothing to box (default: 0)")
    ssd.add_argument("--loss", choices=("book", "hard_negatives", "hard_negatives_ignore", "hard_negatives_promote"),
                     default="book",
                     help="book: the book's calc_loss over all anchors; hard_negatives: SSD's, the positives and "
                     "3 times as many of the hardest background anchors; hard_negatives_ignore: the same, never "
                     "mining a background anchor whose predicted box already overlaps a banana by 0.5; "
                     "hard_negatives_promote: the same, and an anchor whose predicted box overlaps a banana by 0.75 "
                     "is taught as a banana (default: book)")
    add_seed(ssd, help_text="seeds the initial weights, the shuffling and --augment (default: 0)")
    add_seed(ssd, "--data-seed", "seed of the generated banana data, cached on first use (default: 0)")
    data = ssd.add_mutually_exclusive_group()
    data.add_argument("--data", type=Path, default=None, metavar="DIR",
                      help="read this folder in the book's banana-detection layout instead of the cache")
    data.add_argument("--synthetic-train", type=int_in("synthetic train images", 1, 100_000), default=1000,
                      metavar="N", help="training images in the generated set, 1..100000; its 100 val images do "
                      "not depend on it (default: 1000, the book's)")
    ssd.add_argument("--init", default=None, metavar="NAME",
                     help="start from these registered weights (sha256-checked) instead of random ones; "
                     "the manifest then records the chain of commands")
    add_device(ssd)
    ssd.add_argument("--cpu-bfloat16", action="store_true",
                     help="on the CPU, train under bfloat16 autocast: about 2x faster on CPUs with bfloat16 "
                     "instructions (AVX-512 BF16, AMX), slower on ones without")
    ssd.add_argument("--save", nargs="?", const=TRAINED_NAME, default=TRAINED_NAME, metavar="NAME",
                     help=f"record the weights under this registry name (default: {TRAINED_NAME}, replaced by the "
                     "next default run); other weights already in the project's pretrained/ (the shipped ones) are "
                     "never replaced")
    ssd.add_argument("--no-save", dest="save", action="store_const", const=None, help="do not record the weights")
    add_weights_dir(ssd, "weights registry folder for --init and --save (default: the project's pretrained/)")
    ssd.set_defaults(func=_cmd_train_ssd)


def add_detect_parser(commands: argparse._SubParsersAction) -> None:
    """``detect IMAGE``."""
    detect = add_image_command(commands, "detect", "detect bananas in an image with the trained TinySSD",
                               "Run the registered TinySSD on an image and print one row per detection: class, "
                               "score, x1, y1, x2, y2 (pixels).", "tiny_ssd_bananas")
    detect.add_argument("--threshold", type=float_in("threshold", 0.0, 1.0), default=0.9,
                        help="minimum score, in [0, 1] (default: 0.9)")
    detect.set_defaults(func=_cmd_detect)


def _train_command(args: argparse.Namespace) -> str:
    # The options that decide the weights, all spelled out, so the manifest's command reruns as is.
    parts = ["python", "-m", "vision_core", "train", "ssd", "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--lr", repr(args.lr), "--seed", str(args.seed),
             "--data-seed", str(args.data_seed), "--device", args.device]
    if args.optimizer != "sgd":
        parts += ["--optimizer", args.optimizer]
    if args.augment:
        parts += ["--augment"]
    if args.background_crops:
        parts += ["--background-crops", repr(args.background_crops)]
    if args.loss != "book":
        parts += ["--loss", args.loss]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    elif args.synthetic_train != 1000:
        parts += ["--synthetic-train", str(args.synthetic_train)]
    if args.cpu_bfloat16:
        parts += ["--cpu-bfloat16"]
    if args.init is not None:
        parts += ["--init", args.init]
    return shlex.join(parts)


def _data_description(args: argparse.Namespace) -> str:
    from ..data.bananas import GENERATOR_VERSION

    if args.data is not None:
        return f"the banana-detection folder {args.data}"
    return f"vision_core.data.bananas v{GENERATOR_VERSION} synthetic, {args.synthetic_train} train / 100 val"


def _check_save(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Exit 2 before training unless ``--save NAME`` can be written: a plain name, a writable
    registry folder, and never weights already registered in the project's ``pretrained/``."""
    from ..weights import PRETRAINED_DIR, WeightsError, list_weights

    if args.save is None:
        return
    if not _NAME.fullmatch(args.save):
        parser.error(f"--save {args.save!r}: a registry name is letters, digits, '_', '.' and '-' "
                     f"(at most 100, not starting with '.' or '-'), e.g. {TRAINED_NAME}")
    folder = Path(args.weights_dir or PRETRAINED_DIR)
    if folder.resolve() == PRETRAINED_DIR.resolve():
        try:
            entries = list_weights(folder)
        except WeightsError as err:
            parser.error(f"--weights-dir: {err}")
        # The default name is this command's own output: a second default run replaces the first.
        taken = ({e.name for e in entries} | {e.file for e in entries}) - {TRAINED_NAME, f"{TRAINED_NAME}.safetensors"}
        if args.save != TRAINED_NAME and args.save in taken or f"{args.save}.safetensors" in taken or (folder / f"{args.save}.safetensors").exists():
            parser.error(f"--save {args.save}: weights of that name are already in the project's pretrained/ and "
                         "are never replaced; choose another --save NAME or a --weights-dir DIR of your own")
    check_out_folder(folder, "--weights-dir", parser)


def _read_data(args: argparse.Namespace):
    """(train, val) banana sets from ``--data`` or the cache; a bad ``--data`` folder is a
    :class:`CommandError` (status 2), a cache that cannot be written one with status 1."""
    from ..data.bananas import load_bananas

    try:
        return tuple(load_bananas(args.data, split, args.data_seed, num_train=args.synthetic_train,
                                  progress=CountBar("generating bananas"))
                     for split in ("train", "val"))
    except (ValueError, OSError, csv.Error) as err:
        if args.data is None:  # the generated cache: nothing the user typed was wrong
            raise CommandError(f"could not generate the banana data into the cache: {err}", FAILED) from None
        if isinstance(err, UnicodeDecodeError):
            raise CommandError(f"--data {str(args.data)!r}: a label.csv there is not UTF-8 text ({err.reason} "
                               f"at byte {err.start})") from None
        if isinstance(err, ValueError):  # read_bananas names the folder, file and line
            raise CommandError(f"--data: {err}") from None
        raise CommandError(f"--data {str(args.data)!r}: cannot be read as the banana data ({err})") from None


def _cmd_train_ssd(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from ..checkpoints import continue_chain, load_tiny_ssd, save_tiny_ssd
    from ..device import describe_device
    from ..progress import run_with_bar
    from ..ssd import TinySSD, evaluate_ssd, train_ssd
    from ..weights import WeightsError

    # Everything the command line names is checked before a step of training.
    device = resolve_or_exit(args.device, parser)
    if args.background_crops and not args.augment:
        parser.error("--background-crops needs --augment")
    _check_save(args, parser)
    started, previous = None, None
    if args.init is not None:
        try:
            started, previous = load_tiny_ssd(args.init, directory=args.weights_dir)
        except WeightsError as err:
            parser.error(f"--init: {err}")
    train, val = _read_data(args)
    torch.manual_seed(args.seed)  # the initial weights
    net = TinySSD(1)
    if started is not None:
        net = started
    where = str(args.data) if args.data is not None else f"generated, data seed {args.data_seed}"
    print(f"data: banana detection ({where}); device: {describe_device(device)}", file=sys.stderr)
    start = time.perf_counter()
    last = run_with_bar(train_ssd(train, val, net=net, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  optimizer=args.optimizer, device=device, seed=args.seed, augment=args.augment,
                                  loss=args.loss, cpu_bfloat16=args.cpu_bfloat16,
                                  background_crops=args.background_crops))
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
    if not args.save:
        return 0
    description = (f"TinySSD (d2l 14.7) trained on the synthetic banana data"
                   f"{' with SSD-style augmentation' if args.augment else ''}, {args.epochs} epochs "
                   f"on {describe_device(device)} in {seconds:.0f} s")
    command, metrics["epochs"], total_seconds = continue_chain(previous, _train_command(args), args.epochs, seconds)
    metrics["train_seconds"] = round(total_seconds, 1)
    if previous is not None:
        description += f", continued from {previous.name} (sha256 {previous.sha256[:12]})"
    try:
        entry = save_tiny_ssd(net, metrics, command, args.data_seed, name=args.save, directory=args.weights_dir,
                              description=description, data=_data_description(args))
    except OSError as err:
        raise CommandError(f"trained, but the weights could not be saved: {err}", FAILED) from None
    folder = args.weights_dir or "pretrained"
    print(f"saved {entry.name}: {folder}/{entry.file} ({entry.bytes:,} bytes, sha256 {entry.sha256[:12]}...)")
    hint = "" if args.weights_dir is None else f" --weights-dir {shlex.quote(str(args.weights_dir))}"
    print(f"detect with them: {PROG} detect IMAGE --weights {entry.name}{hint}")
    return 0


def _cmd_detect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..checkpoints import load_tiny_ssd
    from ..ssd import predict
    from ..weights import WeightsError

    device, image = device_and_image(args, parser)
    try:
        net, entry = load_tiny_ssd(args.weights, args.weights_dir, device=device)
    except WeightsError as err:
        raise CommandError(f"{err}; train and register weights with: {PROG} train ssd", FAILED) from None
    rows = predict(net, image, threshold=args.threshold)[0]
    print(f"# {args.image} ({image.shape[2]} x {image.shape[1]}), weights {entry.name}, score >= {args.threshold:g}")
    print("class score x1 y1 x2 y2")
    for cls, score, x1, y1, x2, y2 in rows.tolist():
        print(f"{int(cls)} {score:.4f} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}")
    if not len(rows):
        print(f"# no detections with score >= {args.threshold:g}")
    return 0
