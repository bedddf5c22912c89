"""Does the FCN read shapes or colours? Its labels on the synthetic val split, and on the same
images with every object's colours turned.

    python -m benchmarks.fcn_recolour [--weights NAME] [--limit 100] [--json PATH]

Each val image (320 x 480, whole) is segmented as it is and twice more with every object pixel's
channels rotated, ``(R, G, B) -> (G, B, R)`` and ``-> (B, R, G)``: a hue turn of 120 and 240
degrees that keeps each pixel's brightness range and saturation, the background untouched. A
network that labels by colour changes its mind; one that reads shapes does not. Reports mIoU
against the true labels for the three versions, and ``kept``: the share of object pixels whose
predicted class is the same after the turn as before (both turns pooled).

Then how sure it is (``predict_fcn_confidence``): the share of pixels below 0.9 (what the
Segment panel calls unsure) on every val image, and on the offline example photos, with the
share of each photo it calls background: the numbers behind the panel's "outside" notice.

Quality, not speed: the numbers do not depend on the machine beyond float rounding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.common import machine_line, print_table
from vision_core.checkpoints import FCN_WEIGHTS, load_fcn
from vision_core.data.voc import VOID_INDEX, read_voc_images, voc_colormap2label, voc_label_indices
from vision_core.data.voc_metrics import confusion_matrix, mean_iou
from vision_core.data.voc_synthetic import synthetic_voc_dir
from vision_core.examples import example_names, load_example
from vision_core.fcn import predict_fcn, predict_fcn_confidence

TURNS = (1, 2)  # channel rotations: 120 and 240 degrees of hue


def recolour_objects(images: Tensor, labels: Tensor, turn: int) -> Tensor:
    """Images with every object pixel's channels rotated by ``turn`` places, background kept.

    Args:
        images (Tensor[N, 3, H, W]): uint8 photos.
        labels (Tensor[N, H, W]): class indices; ``0`` (background) and void pixels keep their colour.
        turn (int): 1 maps ``(R, G, B)`` to ``(G, B, R)``, 2 to ``(B, R, G)``.

    Returns:
        Tensor[N, 3, H, W]: uint8.
    """
    objects = ((labels > 0) & (labels != VOID_INDEX))[:, None]  # [N, 1, H, W]
    return torch.where(objects, images.roll(-turn, dims=1), images)


def measure(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 8) -> dict[str, float]:
    """mIoU on the images as they are and recoloured, and the share of object pixels whose class is kept.

    Args:
        net (nn.Module): an FCN, as :func:`~vision_core.fcn.predict_fcn` takes.
        images (Tensor[N, 3, H, W]): uint8 photos.
        labels (Tensor[N, H, W]): int64 class indices (void ``255`` left out of mIoU).
        batch_size (int): images per forward pass.

    Returns:
        dict: ``miou``, ``miou_turn_1``, ``miou_turn_2`` and ``kept`` (floats in 0..1).
    """
    num_classes = int(getattr(net, "num_classes", 21))
    before = predict_fcn(net, images, batch_size)
    objects = (labels > 0) & (labels != VOID_INDEX)
    out = {"miou": float(mean_iou(confusion_matrix(before, labels, num_classes)))}
    kept = 0
    for turn in TURNS:
        after = predict_fcn(net, recolour_objects(images, labels, turn), batch_size)
        out[f"miou_turn_{turn}"] = float(mean_iou(confusion_matrix(after, labels, num_classes)))
        kept += int(((after == before) & objects).sum())
    out["kept"] = kept / max(len(TURNS) * int(objects.sum()), 1)
    return out


def unsure_shares(net: nn.Module, images: Tensor, threshold: float = 0.9) -> tuple[Tensor, Tensor]:
    """Per image, the share of pixels whose class has softmax probability below ``threshold``,
    and the share labelled background: ``(float Tensor[N], float Tensor[N])`` for ``images``
    (uint8 ``Tensor[N, 3, H, W]``, one size)."""
    pred, confidence = predict_fcn_confidence(net, images)  # [N, H, W] each
    return (confidence < threshold).float().mean(dim=(1, 2)), (pred == 0).float().mean(dim=(1, 2))


def load_val(limit: int | None = None) -> tuple[Tensor, Tensor]:
    """The synthetic val split (seed 0), whole images: ``(uint8 Tensor[N, 3, 320, 480], int64 Tensor[N, 320, 480])``."""
    features, colormaps = read_voc_images(synthetic_voc_dir(0), is_train=False)
    features, colormaps = features[:limit], colormaps[:limit]
    colormap2label = voc_colormap2label(VOID_INDEX)
    return torch.stack(features), torch.stack([voc_label_indices(c, colormap2label).long() for c in colormaps])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=FCN_WEIGHTS, help="registered FCN weights (default: the shipped file)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="registry folder (default: pretrained/)")
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT val images")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    net, _ = load_fcn(args.weights, args.weights_dir)
    images, labels = load_val(args.limit)
    metrics = measure(net, images, labels)
    print(machine_line())
    print_table([[args.weights, str(len(images)), f"{metrics['miou']:.3f}", f"{metrics['miou_turn_1']:.3f}",
                  f"{metrics['miou_turn_2']:.3f}", f"{metrics['kept']:.1%}"]],
                ["weights", "images", "mIoU", "mIoU, hue +120", "mIoU, hue +240", "object pixels kept"])
    unsure, _ = unsure_shares(net, images)
    metrics["val_unsure_mean"], metrics["val_unsure_min"], metrics["val_unsure_max"] = (
        float(unsure.mean()), float(unsure.min()), float(unsure.max()))
    rows = [["synthetic val", str(len(images)), f"{unsure.mean():.1%} (min {unsure.min():.1%}, max {unsure.max():.1%})",
             "-"]]
    for name in example_names():
        photo = torch.from_numpy(load_example(name)).permute(2, 0, 1)[None]
        photo_unsure, background = unsure_shares(net, photo)
        metrics[f"photo_{name}_unsure"], metrics[f"photo_{name}_background"] = float(photo_unsure), float(background)
        rows.append([f"photo: {name}", "1", f"{float(photo_unsure):.1%}", f"{float(background):.1%}"])
    print_table(rows, ["pictures", "images", "pixels below 0.9 (unsure)", "called background"])
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
