"""Pascal VOC 2012 for semantic segmentation (d2l 14.9): the book's names, readers and loaders.

The book trains its FCN on ``VOCtrainval_11-May-2012.tar`` (2 GB), which extracts to::

    VOCdevkit/VOC2012/
      ImageSets/Segmentation/train.txt, val.txt   one image name a line
      JPEGImages/<name>.jpg                       the photos
      SegmentationClass/<name>.png                the labels: one colour per class

Its names are here with its behaviour: :data:`VOC_CLASSES`, :data:`VOC_COLORMAP`,
:func:`voc_colormap2label`, :func:`voc_label_indices`, :func:`voc_rand_crop`,
:func:`read_voc_images`, :class:`VOCSegDataset` and :func:`load_data_voc`. They read the real
set (:mod:`vision_core.data.downloads` fetches it on request) or the offline stand-in that
:mod:`vision_core.data.voc_synthetic` writes in the same layout; without a folder,
:func:`load_data_voc` reads the stand-in's cached copy, never the network.
:mod:`vision_core.data.voc_metrics` scores predictions against these labels.

Void pixels. Real VOC labels are palette PNGs whose index 255 (colour ``(224, 224, 192)``)
marks object borders and "difficult" regions. The book reads labels as RGB and maps every
colour that is not one of the 21 class colours to 0 through ``colormap2label``'s zero default,
so void becomes background; the functions here do the same by default, and take
``void_index=255`` (for ``CrossEntropyLoss(ignore_index=255)`` and the metrics) to keep it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor

from .._checks import ArgumentError, check_int, check_pair, describe, is_int
from .._runtime import imagenet_normalize
from ._synth import PathLike

__all__ = [
    "VOC_CLASSES",
    "VOC_COLORMAP",
    "VOID_COLOR",
    "VOID_INDEX",
    "voc_colormap2label",
    "voc_label_indices",
    "voc_rand_crop",
    "read_voc_images",
    "VOCSegDataset",
    "load_voc",
    "load_data_voc",
]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv/monitor",
)


def _voc_palette() -> np.ndarray:
    """The 256-colour palette of VOC's label PNGs: ``np.ndarray[256, 3]`` uint8.

    Index ``i``'s bits are dealt out to R, G, B in turn, most significant bit first, so the
    first classes get well-separated colours.
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


_PALETTE = _voc_palette()
VOC_COLORMAP = tuple(tuple(int(c) for c in rgb) for rgb in _PALETTE[: len(VOC_CLASSES)])
VOID_INDEX = 255
VOID_COLOR = tuple(int(c) for c in _PALETTE[VOID_INDEX])  # (224, 224, 192)


def _check_void_index(void_index: Any) -> None:
    if void_index is not None and not (is_int(void_index) and (void_index == 0 or 21 <= void_index <= 255)):
        raise ArgumentError("void_index", "None or 0 (void is background, as the book), or an integer in [21, 255]",
                            repr(void_index))


# --- the book's colour <-> class mapping ----------------------------------------------------

def _pack_rgb(colormap: Tensor) -> Tensor:
    """``Tensor[3, ...]`` RGB -> ``Tensor[...]`` int64 codes ``(R * 256 + G) * 256 + B``."""
    rgb = colormap.long()
    return (rgb[0] * 256 + rgb[1]) * 256 + rgb[2]


def voc_colormap2label(void_index: int | None = None) -> Tensor:
    """The book's lookup table from a packed RGB colour to its VOC class.

    Args:
        void_index (int, optional): class for the void colour ``(224, 224, 192)``. ``None``
            (default) leaves it at 0, like every other unknown colour: the book's behaviour.

    Returns:
        Tensor[256 ** 3]: int64; entry ``(R * 256 + G) * 256 + B`` is the class index of that
        colour, 0 for colours that are not in :data:`VOC_COLORMAP`.
    """
    _check_void_index(void_index)
    table = torch.zeros(256**3, dtype=torch.long)
    table[_pack_rgb(torch.tensor(VOC_COLORMAP).T)] = torch.arange(len(VOC_COLORMAP))
    if void_index is not None:
        table[_pack_rgb(torch.tensor(VOID_COLOR)[:, None])] = void_index
    return table


def voc_label_indices(colormap: Tensor, colormap2label: Tensor) -> Tensor:
    """Class index of every pixel of an RGB label image: the book's ``voc_label_indices``.

    Args:
        colormap (Tensor[3, H, W]): an RGB label image (uint8, or any integer dtype 0..255).
        colormap2label (Tensor[256 ** 3]): from :func:`voc_colormap2label`.

    Returns:
        Tensor[H, W]: int64 class indices, on ``colormap2label``'s device.
    """
    if not isinstance(colormap, Tensor) or colormap.dim() != 3 or colormap.shape[0] != 3:
        raise ArgumentError("colormap", "a Tensor[3, H, W] of RGB values", describe(colormap))
    if not isinstance(colormap2label, Tensor) or colormap2label.shape != (256**3,):
        raise ArgumentError("colormap2label", f"a Tensor[{256**3}] from voc_colormap2label()", describe(colormap2label))
    return colormap2label[_pack_rgb(colormap).to(colormap2label.device)]


def _channel_codes() -> np.ndarray:
    # Every palette colour used here has channels in {0, 64, 128, 192, 224}: code those 0..4 and
    # anything else 5, so a colour becomes one of 6 ** 3 small codes, looked up in uint8 tables.
    codes = np.full(256, 5, np.uint8)
    codes[[0, 64, 128, 192, 224]] = np.arange(5)
    return codes


_CHANNEL_CODES = _channel_codes()


def _label_indices(colormap: Tensor, void_index: int | None = None) -> Tensor:
    """:func:`voc_label_indices` without the 128 MB table, for reading files: ``Tensor[3, H, W]`` uint8
    -> ``Tensor[H, W]`` uint8 (CPU), the same classes (unknown colours 0, void ``void_index`` or 0)."""
    table = np.zeros(6**3, np.uint8)
    colours = list(VOC_COLORMAP) + ([VOID_COLOR] if void_index is not None else [])
    classes = list(range(len(VOC_COLORMAP))) + ([void_index] if void_index is not None else [])
    for (r, g, b), cls in zip(colours, classes, strict=True):
        table[(_CHANNEL_CODES[r] * 6 + _CHANNEL_CODES[g]) * 6 + _CHANNEL_CODES[b]] = cls
    # uint8 numpy lookups: tens of times faster on CPU than packing the colours into int64.
    c = _CHANNEL_CODES[colormap.cpu().numpy()]
    return torch.from_numpy(table[(c[0] * 6 + c[1]) * 6 + c[2]])


def _crop_params(feature: Tensor, height: int, width: int,
                 generator: torch.Generator | None) -> tuple[int, int]:
    if generator is None:
        # Exactly the book's draws from the global RNG, so torch.manual_seed gives its crops.
        top, left, _, _ = torchvision.transforms.RandomCrop.get_params(feature, (height, width))
        return top, left
    # get_params' draws, in its order, from the given generator instead.
    height_in, width_in = feature.shape[-2:]
    if (height_in, width_in) == (height, width):
        return 0, 0
    top = int(torch.randint(0, height_in - height + 1, size=(1,), generator=generator).item())
    left = int(torch.randint(0, width_in - width + 1, size=(1,), generator=generator).item())
    return top, left


def voc_rand_crop(feature: Tensor, label: Tensor, height: int, width: int,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One random crop, the same rectangle from the image and its label: the book's ``voc_rand_crop``.

    Args:
        feature (Tensor[C, H, W]): the image (any dtype).
        label (Tensor[..., H, W]): its label: an RGB colormap ``[3, H, W]`` or indices ``[H, W]``.
        height (int): crop height, in [1, H].
        width (int): crop width, in [1, W].
        generator (torch.Generator, optional): draw the offsets from it; without it they come
            from torch's global RNG exactly as the book's ``RandomCrop.get_params`` draws them.

    Returns:
        (Tensor[C, height, width], Tensor[..., height, width]): views into the inputs.
    """
    if not isinstance(feature, Tensor) or feature.dim() < 2:
        raise ArgumentError("feature", "a Tensor[C, H, W]", describe(feature))
    if not isinstance(label, Tensor) or label.dim() < 2 or label.shape[-2:] != feature.shape[-2:]:
        raise ArgumentError("label", f"a Tensor[..., H, W] with feature's H, W = {tuple(feature.shape[-2:])}",
                            describe(label))
    h_in, w_in = feature.shape[-2:]
    height, width = check_int(height, "height", 1, h_in), check_int(width, "width", 1, w_in)
    top, left = _crop_params(feature, height, width, generator)
    rows, cols = slice(top, top + height), slice(left, left + width)
    return feature[..., rows, cols], label[..., rows, cols]


# --- reading the VOC layout -----------------------------------------------------------------

def _list_file(voc_dir: Path, is_train: bool) -> Path:
    return voc_dir / "ImageSets" / "Segmentation" / ("train.txt" if is_train else "val.txt")


def _has_layout(voc_dir: Path) -> bool:
    return all(_list_file(voc_dir, is_train).is_file() for is_train in (True, False))


def _resolve_voc_dir(root: PathLike) -> Path:
    # Accept the VOC2012 folder itself (the book's voc_dir), or a folder the archive was
    # extracted into (VOCdevkit/VOC2012 below it), or VOCdevkit.
    given = Path(root)
    for candidate in (given, given / "VOC2012", given / "VOCdevkit" / "VOC2012"):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise ValueError(
        f"voc_dir {str(given)!r} has no ImageSets/Segmentation/ folder (nor VOC2012/ or VOCdevkit/VOC2012/ "
        "below it): expected the VOC 2012 layout; generate_voc_synthetic(root) or download_voc(root) writes one")


def _read_names(list_path: Path) -> list[str]:
    if not list_path.is_file():
        raise ValueError(f"{list_path} not found: the split's image list (one name a line)")
    names = list_path.read_text(encoding="utf-8").split()  # the book splits on any whitespace
    for name in names:
        if name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"{list_path}: image names must be file names without extension, got {name!r}")
    return names


def _read_rgb(path: Path, list_path: Path, name: str) -> Tensor:
    if not path.is_file():
        raise ValueError(f"{list_path} lists {name!r} but {path} is missing")
    try:
        # torchvision's decoder, as the book; RGB mode expands palette and grey files.
        return torchvision.io.read_image(str(path), torchvision.io.ImageReadMode.RGB)
    except (RuntimeError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def read_voc_images(voc_dir: PathLike, is_train: bool = True) -> tuple[list[Tensor], list[Tensor]]:
    """Read one split of the VOC layout: the book's ``read_voc_images``.

    Label PNGs are read as RGB whatever their mode: real VOC's palette (``P``) files and RGB
    files give the same colours. Differences from the book: photos are also read as RGB (a
    grey JPEG gives 3 channels, not 1), and a label whose size differs from its photo's is an
    error instead of a silently misaligned crop later.

    Args:
        voc_dir (str or PathLike): the ``VOC2012`` folder (or a folder with ``VOCdevkit/VOC2012``
            or ``VOC2012`` below it).
        is_train (bool): read ``train.txt``'s images, else ``val.txt``'s.

    Returns:
        (list of Tensor[3, H, W], list of Tensor[3, H, W]): uint8 photos and uint8 RGB label
        images, in the list file's order; sizes vary from image to image.
    """
    voc_dir = _resolve_voc_dir(voc_dir)
    list_path = _list_file(voc_dir, bool(is_train))
    features, labels = [], []
    for name in _read_names(list_path):
        feature = _read_rgb(voc_dir / "JPEGImages" / f"{name}.jpg", list_path, name)
        label = _read_rgb(voc_dir / "SegmentationClass" / f"{name}.png", list_path, name)
        if feature.shape != label.shape:
            raise ValueError(f"{name}: label is {label.shape[2]} x {label.shape[1]} pixels but the photo is "
                             f"{feature.shape[2]} x {feature.shape[1]}")
        features.append(feature)
        labels.append(label)
    return features, labels


class VOCSegDataset(torch.utils.data.Dataset):
    """The book's ``VOCSegDataset``: random crops of one split, photos normalised for ImageNet.

    Images smaller than ``crop_size`` are dropped (``num_dropped`` says how many; the book
    prints ``read N examples`` instead). With the same torch seed an item is bit-identical to the
    book's. Unlike the book, images are kept as uint8 and normalised after cropping (the same
    numbers, 4 x less memory), and labels are turned into class indices once, up front.

    Args:
        is_train (bool): the train split, else val.
        crop_size ((int, int)): ``(height, width)`` of every item.
        voc_dir (str or PathLike): as :func:`read_voc_images`.
        void_index (int, optional): class of void pixels; ``None`` maps them to 0 as the book.

    Items:
        ``(Tensor[3, height, width] float32, Tensor[height, width] int64)``: the normalised photo
        crop and its class indices.
    """

    def __init__(self, is_train: bool, crop_size: tuple[int, int], voc_dir: PathLike,
                 void_index: int | None = None) -> None:
        self.crop_size = check_pair(crop_size, "crop_size", 1)
        _check_void_index(void_index)
        features, labels = read_voc_images(voc_dir, is_train=is_train)
        self.features = self.filter(features)
        self.labels = [_label_indices(label, void_index) for label in self.filter(labels)]
        self.num_dropped = len(features) - len(self.features)
        self.void_index = void_index

    def normalize_image(self, img: Tensor) -> Tensor:
        """uint8 ``Tensor[3, h, w]`` -> float32, scaled to 0..1 then ImageNet-normalised (the book's)."""
        return imagenet_normalize(img.float())

    def filter(self, imgs: Sequence[Tensor]) -> list[Tensor]:
        """The images at least ``crop_size`` in both directions."""
        h, w = self.crop_size
        return [img for img in imgs if img.shape[-2] >= h and img.shape[-1] >= w]

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return self.normalize_image(feature), label.long()

    def __len__(self) -> int:
        return len(self.features)


# --- the book's loaders --------------------------------------------------------------------

def _voc_dir(root: PathLike | None, seed: int, synthetic: dict[str, Any]) -> PathLike:
    """``root``, or the cached synthetic set's folder (generated on first use) when it is None."""
    if root is not None:
        return root
    # Imported here: voc_synthetic builds on this module (the palette, the layout check).
    from .voc_synthetic import synthetic_voc_dir

    return synthetic_voc_dir(seed, **synthetic)


def load_voc(root: PathLike | None = None, is_train: bool = True, seed: int = 0,
             **synthetic: Any) -> tuple[list[Tensor], list[Tensor]]:
    """:func:`read_voc_images` of ``root``, or of the cached synthetic set when ``root`` is None.

    Args:
        root (str or PathLike, optional): a VOC-layout folder (real or generated).
        is_train (bool): the train split, else val.
        seed (int): >= 0; only used for the synthetic set.
        **synthetic: ``num_train``, ``num_val``, ``height``, ``width``, ``progress`` for
            :func:`~vision_core.data.voc_synthetic.synthetic_voc_dir`; only used when ``root`` is None.
    """
    return read_voc_images(_voc_dir(root, seed, synthetic), is_train)


def load_data_voc(
    batch_size: int,
    crop_size: tuple[int, int],
    root: PathLike | None = None,
    seed: int = 0,
    *,
    num_workers: int = 0,
    void_index: int | None = None,
    **synthetic: Any,
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """The book's ``load_data_voc``: ``(train_iter, test_iter)`` of random crops.

    As the book, the train loader shuffles and both drop their last partial batch. Without
    ``root`` it reads the cached synthetic set (generated on first use), never the network;
    :func:`~vision_core.data.downloads.download_voc` fetches the real one.

    Args:
        batch_size (int): >= 1, and at most the number of images each split keeps.
        crop_size ((int, int)): ``(height, width)``.
        root (str or PathLike, optional): a VOC-layout folder; see :func:`read_voc_images`.
        seed (int): >= 0; only used for the synthetic set.
        num_workers (int): DataLoader worker processes, >= 0 (the book uses 4).
        void_index (int, optional): as :class:`VOCSegDataset`.
        **synthetic: as :func:`load_voc`.
    """
    check_int(batch_size, "batch_size", 1)
    crop_size = check_pair(crop_size, "crop_size", 1)
    check_int(num_workers, "num_workers", 0)
    _check_void_index(void_index)
    voc_dir = _voc_dir(root, seed, synthetic)
    loaders = []
    for is_train in (True, False):
        data = VOCSegDataset(is_train, crop_size, voc_dir, void_index=void_index)
        if len(data) < batch_size:
            split = "train" if is_train else "val"
            raise ArgumentError(
                "batch_size", f"at most {len(data)}, the number of {split} images at least crop_size {crop_size} "
                f"({data.num_dropped} smaller dropped), as batches drop the last partial one", batch_size)
        loaders.append(torch.utils.data.DataLoader(data, batch_size, shuffle=is_train, drop_last=True,
                                                   num_workers=num_workers))
    return loaders[0], loaders[1]

