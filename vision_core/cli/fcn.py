"""``python -m vision_core train fcn`` and ``segment``: the book's FCN (d2l 14.11), also under ``torchrun``.

``train fcn`` runs in one process, or in one process per device under ``torchrun``
(``torchrun --nproc_per_node=N -m vision_core train fcn ...``, DistributedDataParallel: NCCL on
GPUs, gloo on the CPU): :func:`ddp_main` joins the process group and lets
:func:`vision_core.fcn.train_fcn` do the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..models.fcn import STRIDE
from ._common import (FAILED, PROG, CommandError, add_image_command, add_seed, add_weights_dir, check_out_file,
                      device_and_image, float_in, int_in, save_picture)

__all__ = ["add_train_parser", "add_segment_parser", "ddp_main"]


def add_train_parser(models: argparse._SubParsersAction) -> None:
    """``train fcn``."""
    fcn = models.add_parser(
        "fcn", help="the book's FCN on the synthetic VOC set (d2l 14.11)",
        description="Train the book's FCN (d2l 14.11) on the synthetic VOC set or a VOC-layout folder. "
        "Under torchrun (torchrun --nproc_per_node=N -m vision_core train fcn ...) it trains with "
        "DistributedDataParallel: NCCL on GPUs, gloo on the CPU; --batch-size is the global batch.")
    data = fcn.add_mutually_exclusive_group()
    data.add_argument("--voc-dir", type=Path, default=None, metavar="DIR",
                      help="a VOC-layout folder (default: the cached synthetic set, generated on first use)")
    data.add_argument("--synthetic-train", type=int_in("synthetic train images", 1, 100_000), default=600,
                      metavar="N", help="training images in the synthetic set, 1..100000; its 100 val images "
                      "do not depend on it (default: 600)")
    add_seed(fcn, "--data-seed", "seed of the synthetic set (default: 0)")
    fcn.add_argument("--crop", type=int_in("crop", STRIDE, 4096), nargs=2, default=(320, 480), metavar=("H", "W"),
                     help=f"crop height and width, multiples of {STRIDE} (default: 320 480)")
    fcn.add_argument("--epochs", type=int_in("epochs", 1, 500), default=5, help="1..500 (default: 5)")
    fcn.add_argument("--batch-size", type=int_in("batch size", 1, 1024), default=32, help="1..1024 (default: 32)")
    fcn.add_argument("--lr", type=float_in("lr", 0.0, 10.0, lo_open=True), default=1e-3,
                     help="learning rate in (0, 10] (default: 0.001, the book's)")
    fcn.add_argument("--weight-decay", type=float_in("weight decay", 0.0, 1.0), default=1e-3,
                     help="in [0, 1] (default: 0.001)")
    fcn.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="(default: sgd, the book's)")
    add_seed(fcn, help_text="seeds the initial weights, shuffling and crops (default: 0)")
    fcn.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="auto: cuda:LOCAL_RANK when CUDA is there, else cpu")
    fcn.add_argument("--cpu-bfloat16", action="store_true",
                     help="on the CPU, train under bfloat16 autocast: about 1.8x faster on CPUs with AMX, slower "
                     "on ones without bfloat16 instructions")
    fcn.add_argument("--backbone", default="auto", metavar="auto|none|PATH",
                     help="trunk init: auto uses torchvision's ImageNet ResNet-18 file if the cache has it, "
                     "none starts random, or a .pth path (default: auto)")
    fcn.add_argument("--init", default=None, metavar="NAME",
                     help="start from these registered weights (sha256-checked) instead of --backbone; the "
                     "manifest then records the chain of commands")
    fcn.add_argument("--save", default=None, metavar="NAME", help="record the result in the weights registry")
    add_weights_dir(fcn, "weights registry folder (default: the project's pretrained/)")
    fcn.add_argument("--report-dir", type=Path, default=None, metavar="DIR",
                     help="each process writes rank<R>.json there: last metrics and its weights' sha256")
    fcn.set_defaults(func=_cmd_train_fcn)


def add_segment_parser(commands: argparse._SubParsersAction) -> None:
    """``segment IMAGE``."""
    segment = add_image_command(commands, "segment", "segment an image with the trained FCN",
                                "Run the registered FCN on an image; print each class's share of the pixels and "
                                "optionally save the overlay.", "fcn_resnet18_synthetic")
    segment.add_argument("--out", type=Path, default=None, metavar="PNG",
                         help="write the mask overlay here (its folder must exist; PNG unless the extension names "
                         "another format)")
    segment.set_defaults(func=_cmd_segment)


# --- train fcn ----------------------------------------------------------------------------------

def _cmd_train_fcn(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.crop[0] % STRIDE or args.crop[1] % STRIDE:
        parser.error(f"--crop H W must be multiples of {STRIDE} (the FCN's stride), got {args.crop[0]} {args.crop[1]}")
    try:
        device = _script_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as err:
        parser.error(str(err))
    return ddp_main(args, device, args.argv[2:])


def _script_device(choice: str, local_rank: int):
    import torch

    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"process {local_rank} needs cuda:{local_rank}, but only {torch.cuda.device_count()} "
                         "GPU(s) are visible: lower --nproc_per_node")
    return torch.device("cuda", local_rank)


def _recorded_options(given: Sequence[str]) -> list[str]:
    # The options that decide the weights: where this machine keeps the registry and the
    # reports is not part of the recipe, and a local path would not rerun elsewhere.
    local = ("--weights-dir", "--report-dir")
    kept, skip = [], False
    for arg in given:
        if skip:
            skip = False
        elif arg in local:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in local)):
            kept.append(arg)
    return kept


def _weights_sha256(net) -> str:
    """sha256 over the state dict's names and bytes: equal for bit-identical networks."""
    digest = hashlib.sha256()
    for key, value in net.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def ddp_main(opts: argparse.Namespace, device, given: Sequence[str]) -> int:
    """Train from the command line, in one process or under ``torchrun``; returns the exit status.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one process
    this joins the process group (NCCL on CUDA, gloo on the CPU), gives process ``r`` the GPU
    ``cuda:LOCAL_RANK``, and lets :func:`~vision_core.fcn.train_fcn` do the rest. Rank 0 prints one
    line per epoch, makes the synthetic set if it is missing and saves the weights (``--save``).
    A bad data folder, or another error the library finds, exits with status 2.

    Args:
        opts (argparse.Namespace): ``train fcn``'s parsed options.
        device (torch.device): this process's device.
        given (Sequence[str]): the options as typed, recorded in the manifest (``--weights-dir``
            and ``--report-dir`` left out).
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    joined = False
    try:
        if world > 1:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            joined = True
        net, previous, trunk, train, test = _setup(opts, rank, joined)
        if rank == 0:
            print(f"FCN: {len(train)} train / {len(test)} test crops {opts.crop[0]} x {opts.crop[1]}, {world} "
                  f"process(es) on {device.type}, trunk {trunk}", flush=True)
        last, seconds = _train(opts, net, train, test, device, rank)
        metrics = dict(last.metrics) if last is not None else {}
        if opts.report_dir is not None:
            _report(opts.report_dir, rank, world, device, metrics, _weights_sha256(net), seconds,
                    last is not None and last.message == "stopped")
        if rank == 0 and opts.save:
            _save(opts, net, previous, trunk, metrics, seconds, world, device, given)
    except ValueError as err:  # a bad option or data folder, found by the library's checks
        print(f"{PROG} train fcn: error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        if joined:
            dist.destroy_process_group()
    return 0


def _setup(opts: argparse.Namespace, rank: int, joined: bool):
    # (net, previous WeightEntry or None, how the trunk started, train set, test set).
    import torch
    import torch.distributed as dist

    from ..checkpoints import load_fcn
    from ..data.voc import VOCSegDataset
    from ..data.voc_synthetic import synthetic_voc_dir
    from ..models.fcn import FCN, find_resnet18_imagenet, load_resnet18_imagenet
    from ..weights import WeightsError

    voc_dir = opts.voc_dir
    if voc_dir is None:
        if rank == 0:
            synthetic_voc_dir(opts.data_seed, num_train=opts.synthetic_train)
        if joined:
            dist.barrier()  # the others read the set rank 0 made
        voc_dir = synthetic_voc_dir(opts.data_seed, num_train=opts.synthetic_train)
    crop = tuple(opts.crop)
    train, test = VOCSegDataset(True, crop, voc_dir), VOCSegDataset(False, crop, voc_dir)
    backbone, trunk = None, "random"
    if opts.backbone != "none":
        path = find_resnet18_imagenet(opts.weights_dir) if opts.backbone == "auto" else Path(opts.backbone)
        if path is not None:
            backbone, trunk = load_resnet18_imagenet(path), f"ImageNet ResNet-18 from {path}"
    torch.manual_seed(opts.seed)
    net, previous = FCN(21, pretrained_backbone=backbone), None
    if opts.init is not None:
        try:
            net, previous = load_fcn(opts.init, directory=opts.weights_dir)
        except WeightsError as err:
            raise ValueError(f"--init: {err}") from None
        net.train()
        trunk = previous.source.get("trunk", "unknown")  # how the chain's first run started
    return net, previous, trunk, train, test


def _train(opts: argparse.Namespace, net, train, test, device, rank: int):
    # Runs train_fcn to its end: (last record or None, seconds); rank 0 prints each epoch.
    from ..fcn import train_fcn

    records = train_fcn(train, test, net=net, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                        weight_decay=opts.weight_decay, optimizer=opts.optimizer, device=device,
                        seed=opts.seed, preview=False, record_interval=3600.0, cpu_bfloat16=opts.cpu_bfloat16)
    last, started = None, time.perf_counter()
    for last in records:
        if rank == 0 and "epoch" in last.metrics:
            print(f"{last.message}, {last.metrics['examples_per_s']:.1f} examples/s", flush=True)
    return last, time.perf_counter() - started


def _report(folder: Path, rank: int, world: int, device, metrics: dict, checksum: str, seconds: float,
            stopped: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = {"rank": rank, "world_size": world, "device": str(device), "metrics": metrics,
              "weights_sha256": checksum, "seconds": seconds, "stopped": stopped}
    (folder / f"rank{rank}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")


def _save(opts: argparse.Namespace, net, previous, trunk: str, metrics: dict, seconds: float, world: int, device,
          given: Sequence[str]) -> None:
    from ..checkpoints import continue_chain, save_fcn
    from ..data.voc_synthetic import GENERATOR_VERSION

    launcher = f"{PROG} train fcn" if world == 1 else f"torchrun --nproc_per_node={world} -m vision_core train fcn"
    command, epochs, total_seconds = continue_chain(previous, f"{launcher} {shlex.join(_recorded_options(given))}",
                                                    opts.epochs, seconds)
    data = (f"vision_core.data.voc_synthetic v{GENERATOR_VERSION}, {opts.synthetic_train} train / 100 val, 320 x 480"
            if opts.voc_dir is None else "a VOC-layout folder")
    entry = save_fcn(net, {**metrics, "epochs": epochs, "train_seconds": round(total_seconds, 1)}, command,
                     opts.data_seed, name=opts.save, directory=opts.weights_dir, trunk=trunk, data=data,
                     description=f"FCN (d2l 14.11), ResNet-18 trunk ({trunk}), {epochs} epochs on "
                     f"{world} x {device.type} in {total_seconds:.0f} s; stored as float16")
    print(f"saved {entry.name} ({entry.bytes / 2**20:.1f} MiB)", flush=True)


# --- segment ------------------------------------------------------------------------------------

def _cmd_segment(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from ..checkpoints import load_fcn
    from ..data.voc import VOC_CLASSES
    from ..fcn import overlay_mask, predict_fcn
    from ..weights import WeightsError

    if args.out is not None:
        check_out_file(args.out, "--out", parser)
    device, image = device_and_image(args, parser)
    try:
        net, _ = load_fcn(args.weights, directory=args.weights_dir, device=device)
    except WeightsError as err:
        raise CommandError(f"segment: {err}; train one with: {PROG} train fcn --save fcn_resnet18_synthetic",
                           FAILED) from None
    pred = predict_fcn(net, image)  # [H, W]
    counts = torch.bincount(pred.flatten(), minlength=len(VOC_CLASSES))
    for index in counts.nonzero().flatten().tolist():
        print(f"{VOC_CLASSES[index]:14s} {counts[index].item() / pred.numel():7.2%}")
    if args.out is not None:
        save_picture(overlay_mask(image, pred), args.out)
        print(f"wrote {args.out}")
    return 0
