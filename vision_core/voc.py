"""Semantic-segmentation data (d2l 14.9): Pascal VOC 2012, and an offline synthetic stand-in.

The book trains its FCN on ``VOCtrainval_11-May-2012.tar`` (2 GB), which extracts to::

    VOCdevkit/VOC2012/
      ImageSets/Segmentation/train.txt, val.txt   one image name a line
      JPEGImages/<name>.jpg                       the photos
      SegmentationClass/<name>.png                the labels: one colour per class

Its names are here with its behaviour: :data:`VOC_CLASSES`, :data:`VOC_COLORMAP`,
:func:`voc_colormap2label`, :func:`voc_label_indices`, :func:`voc_rand_crop`,
:func:`read_voc_images`, :class:`VOCSegDataset` and :func:`load_data_voc`.

Offline, :func:`generate_voc_synthetic` writes a set in the same layout (so the same readers
read it unchanged): textured shapes on crops of scikit-image's bundled photos or procedural
textures, each shape labelled with one VOC class (see :data:`SYNTH_CLASSES`).
:func:`download_voc` fetches the real archive when the user asks and the network allows;
``VISION_LAB_OFFLINE=1`` forbids it.

Void pixels. Real VOC labels are palette PNGs whose index 255 (colour ``(224, 224, 192)``)
marks object borders and "difficult" regions. The book reads labels as RGB and maps every
colour that is not one of the 21 class colours to 0 through ``colormap2label``'s zero default,
so void becomes background; the functions here do the same by default, and take
``void_index=255`` (for ``CrossEntropyLoss(ignore_index=255)`` and the metrics below) to keep it.

Metrics for training: :func:`pixel_accuracy`, :func:`confusion_matrix`, :func:`iou_per_class`
and :func:`mean_iou`.
"""

from __future__ import annotations

import colorsys
import math
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor

from .bananas import _photos  # the project's one list of bundled offline photos (lazy scikit-image)
from .progress import Progress
from .weights import fetch_records, file_digest, offline

__all__ = [
    "VOC_CLASSES",
    "VOC_COLORMAP",
    "VOID_COLOR",
    "VOID_INDEX",
    "SYNTH_CLASSES",
    "voc_colormap2label",
    "voc_label_indices",
    "voc_rand_crop",
    "read_voc_images",
    "VOCSegDataset",
    "load_data_voc",
    "load_voc",
    "synthetic_voc_dir",
    "generate_voc_synthetic",
    "VOCDownloadError",
    "download_voc",
    "download_voc_records",
    "pixel_accuracy",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
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

# Synthetic objects: (VOC index, VOC name, what is drawn). Keeping VOC's indices means one
# 21-class model and one legend serve both data sets; the shapes only loosely suggest the names.
# Class identity depends on shape *and* colour family *and* texture, consistently.
SYNTH_CLASSES = (
    (0, "background", "desaturated crops of scikit-image photos, or gradients, clouds, stripes, checkers"),
    (3, "bird", "yellow crescent, shaded along its length, darker tips"),
    (4, "boat", "red-orange triangle with stripes parallel to one side"),
    (5, "bottle", "teal capsule (stadium) with cylindrical shading and a highlight"),
    (16, "potted plant", "green disc with mottled (value-noise) texture"),
    (20, "tv/monitor", "blue rectangle: dark frame around a scan-lined screen"),
)
# Part of the cache folder's name: bump it whenever the generator draws different images for
# the same seed, so that nobody trains on a stale cache.
GENERATOR_VERSION = 1

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_SHA1 = "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"  # the book's DATA_HUB entry for this file
VOC_ARCHIVE = "VOCtrainval_11-May-2012.tar"
_VOC_ARCHIVE_BYTES = 1_999_639_040  # the progress total when the server sends no Content-Length

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_SPLITS = ("train", "val")
_DEFAULTS = {"num_train": 600, "num_val": 100, "height": 320, "width": 480}

PathLike = Union[str, "os.PathLike[str]"]
ProgressCallback = Optional[Callable[[int, int], None]]


# --- argument checks ------------------------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value, lo: int, hi: Optional[int] = None) -> None:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        allowed = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _check_crop_size(crop_size) -> Tuple[int, int]:
    ok = isinstance(crop_size, (tuple, list)) and len(crop_size) == 2 and all(
        _is_int(v) and v >= 1 for v in crop_size)
    if not ok:
        raise ValueError(f"crop_size must be (height, width), two integers >= 1, got {crop_size!r}")
    return int(crop_size[0]), int(crop_size[1])


def _check_void_index(void_index) -> None:
    if void_index is not None and not (_is_int(void_index) and (void_index == 0 or 21 <= void_index <= 255)):
        raise ValueError(
            f"void_index must be None or 0 (void is background, as the book), or an integer in [21, 255], "
            f"got {void_index!r}")


def _check_tensor(name: str, value, shape: str, dims: int, channels: Optional[int] = None) -> None:
    if not isinstance(value, Tensor) or value.dim() != dims or (channels is not None and value.shape[0] != channels):
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a {shape}, got {got}")


# --- the book's colour <-> class mapping ----------------------------------------------------

def _pack_rgb(colormap: Tensor) -> Tensor:
    """``Tensor[3, ...]`` RGB -> ``Tensor[...]`` int64 codes ``(R * 256 + G) * 256 + B``."""
    rgb = colormap.long()
    return (rgb[0] * 256 + rgb[1]) * 256 + rgb[2]


def voc_colormap2label(void_index: Optional[int] = None) -> Tensor:
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
    _check_tensor("colormap", colormap, "Tensor[3, H, W] of RGB values", 3, 3)
    if not isinstance(colormap2label, Tensor) or colormap2label.shape != (256**3,):
        got = tuple(colormap2label.shape) if isinstance(colormap2label, Tensor) else type(colormap2label).__name__
        raise ValueError(f"colormap2label must be a Tensor[{256**3}] from voc_colormap2label(), got {got}")
    return colormap2label[_pack_rgb(colormap).to(colormap2label.device)]


def _channel_codes() -> np.ndarray:
    # Every palette colour used here has channels in {0, 64, 128, 192, 224}: code those 0..4 and
    # anything else 5, so a colour becomes one of 6 ** 3 small codes, looked up in uint8 tables.
    codes = np.full(256, 5, np.uint8)
    codes[[0, 64, 128, 192, 224]] = np.arange(5)
    return codes


_CHANNEL_CODES = _channel_codes()


def _label_indices(colormap: Tensor, void_index: Optional[int] = None) -> Tensor:
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
                 generator: Optional[torch.Generator]) -> Tuple[int, int]:
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
                  generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
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
        raise ValueError(f"feature must be a Tensor[C, H, W], got {getattr(feature, 'shape', type(feature).__name__)}")
    if not isinstance(label, Tensor) or label.dim() < 2 or label.shape[-2:] != feature.shape[-2:]:
        got = tuple(label.shape) if isinstance(label, Tensor) else type(label).__name__
        raise ValueError(
            f"label must be a Tensor[..., H, W] with feature's H, W = {tuple(feature.shape[-2:])}, got {got}")
    h_in, w_in = feature.shape[-2:]
    _check_int("height", height, 1, h_in)
    _check_int("width", width, 1, w_in)
    top, left = _crop_params(feature, int(height), int(width), generator)
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


def _read_names(list_path: Path) -> List[str]:
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


def read_voc_images(voc_dir: PathLike, is_train: bool = True) -> Tuple[List[Tensor], List[Tensor]]:
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

    def __init__(self, is_train: bool, crop_size: Tuple[int, int], voc_dir: PathLike,
                 void_index: Optional[int] = None) -> None:
        self.crop_size = _check_crop_size(crop_size)
        _check_void_index(void_index)
        features, labels = read_voc_images(voc_dir, is_train=is_train)
        self.features = self.filter(features)
        self.labels = [_label_indices(label, void_index) for label in self.filter(labels)]
        self.num_dropped = len(features) - len(self.features)
        self.void_index = void_index

    def normalize_image(self, img: Tensor) -> Tensor:
        """uint8 ``Tensor[3, h, w]`` -> float32, scaled to 0..1 then ImageNet-normalised (the book's)."""
        return torchvision.transforms.functional.normalize(img.float() / 255, _IMAGENET_MEAN, _IMAGENET_STD)

    def filter(self, imgs: Sequence[Tensor]) -> List[Tensor]:
        """The images at least ``crop_size`` in both directions."""
        h, w = self.crop_size
        return [img for img in imgs if img.shape[-2] >= h and img.shape[-1] >= w]

    def __getitem__(self, idx: int) -> Tuple[Tensor, Tensor]:
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return self.normalize_image(feature), label.long()

    def __len__(self) -> int:
        return len(self.features)


# --- the synthetic set: drawing -------------------------------------------------------------

def _image_rngs(seed: int, split: str, index: int) -> Tuple[np.random.Generator, np.random.Generator]:
    # One SeedSequence child per (split, image): any image can be re-drawn alone, without the
    # ones before it. The objects get their own stream, so the label does not depend on which
    # background was drawn (scikit-image present or not).
    ss = np.random.SeedSequence(int(seed), spawn_key=(_SPLITS.index(split), int(index)))
    background, objects = ss.spawn(2)
    return np.random.default_rng(background), np.random.default_rng(objects)


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 ``[h, w]`` grid, bicubically resized to ``[height, width]``."""
    return np.asarray(Image.fromarray(array.astype(np.float32)).resize((width, height), Image.Resampling.BICUBIC))


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: Sequence[int]) -> np.ndarray:
    """Octaves of smooth noise, rescaled to 0..1: ``np.ndarray[height, width]`` float32."""
    total = np.zeros((height, width), np.float32)
    for octave, n in enumerate(cells):
        grid = rng.random((n, max(2, round(n * width / height))), dtype=np.float32)
        total += _resize(grid, height, width) / 2.0**octave
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _photo_background(rng: np.random.Generator, photo: Image.Image, height: int, width: int) -> np.ndarray:
    pw, ph = photo.size
    aspect = width / height * rng.uniform(0.85, 1.15)
    ch = rng.uniform(0.35, 1.0) * min(ph, pw / aspect)
    cw = ch * aspect
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    crop = photo.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    image = np.asarray(crop, dtype=np.float32) / 255.0
    if image.ndim == 2:  # brick, grass, gravel: tint the grey texture between two colours
        dark, light = rng.uniform(0.0, 0.45, 3), rng.uniform(0.55, 1.0, 3)
        image = dark + image[..., None] * (light - dark)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return image * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.75, 1.15)


def _procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    kind = int(rng.integers(4))
    if kind == 0:  # linear gradient
        t = (along - along.min()) / np.ptp(along)
    elif kind == 1:  # clouds
        t = _value_noise(rng, height, width, (3, 6, 12, 24))
    elif kind == 2:  # stripes, soft to hard
        t = 0.5 + 0.5 * np.sin(2.0 * math.pi * rng.uniform(3.0, 16.0) * along + rng.uniform(0, 2 * math.pi))
        t = np.clip((t - 0.5) * rng.uniform(1.0, 6.0) + 0.5, 0.0, 1.0)
    else:  # rotated checker
        cell = rng.uniform(0.05, 0.2)
        t = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)
    c0, c1 = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
    image = c0 + t[..., None] * (c1 - c0)
    lit_angle = rng.uniform(0.0, 2.0 * math.pi)
    lit = 1.0 + rng.uniform(-0.3, 0.3) * (xx * math.cos(lit_angle) + yy * math.sin(lit_angle) - 0.5)
    return image * lit[..., None]


def _background(rng: np.random.Generator, photos: Sequence[Image.Image], height: int, width: int) -> np.ndarray:
    """``np.ndarray[height, width, 3]`` float32 in 0..1."""
    if photos and rng.random() < 0.6:
        image = _photo_background(rng, photos[int(rng.integers(len(photos)))], height, width)
    else:
        image = _procedural_background(rng, height, width)
    # Tone the colours down: objects are saturated, backgrounds less so, which (with shape)
    # keeps every class learnable by a small FCN even where a photo shares an object's hue.
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = grey[..., None] + (image - grey[..., None]) * rng.uniform(0.25, 0.6)
    grain = rng.normal(0.0, rng.uniform(0.005, 0.02), image.shape).astype(np.float32)
    return np.clip(image + grain, 0.0, 1.0).astype(np.float32)


def _hsv(rng: np.random.Generator, hue: Tuple[float, float], sat: Tuple[float, float],
         val: Tuple[float, float]) -> np.ndarray:
    h, s, v = rng.uniform(*hue) / 360.0 % 1.0, rng.uniform(*sat), rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# Each shape: (rng, u, v, radius) -> (signed distance in pixels, negative inside; RGB colour).
# (u, v) are pixel-centre coordinates in the object's own rotated frame, origin at its centre;
# `radius` is half the object's extent. Textures live in that frame so they turn with the shape.

def _crescent(rng, u, v, radius):  # bird: yellow
    inner = radius * rng.uniform(0.78, 0.92)
    shift = radius * rng.uniform(0.38, 0.55)
    dist = np.maximum(np.hypot(u, v) - radius, inner - np.hypot(u - shift, v))
    colour = _hsv(rng, (46, 60), (0.75, 1.0), (0.85, 1.0))
    along = v / radius  # -1..1 from horn to horn
    shade = 0.75 + 0.25 * np.cos(along * rng.uniform(1.0, 1.6) + rng.uniform(-0.4, 0.4))
    rgb = colour * shade[..., None]
    tip = _smoothstep(0.6, 0.95, np.abs(along))
    return dist, rgb * (1.0 - 0.45 * tip[..., None])


def _triangle(rng, u, v, radius):  # boat: red-orange, striped
    angles = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
    angles[0] = 0.0
    reach = radius * rng.uniform(0.85, 1.0, 3)
    corners = np.stack([reach * np.cos(angles), reach * np.sin(angles)], 1)  # counter-clockwise
    dist = np.full(u.shape, -np.inf, np.float32)
    for k in range(3):
        a, b = corners[k], corners[(k + 1) % 3]
        edge = (b - a) / np.linalg.norm(b - a)
        # Distance to the edge's line, positive outside: exact near the edges (what antialiasing
        # needs), an underestimate near the outside of the corners; the sign is exact everywhere.
        dist = np.maximum(dist, -(edge[0] * (v - a[1]) - edge[1] * (u - a[0])))
    colour = _hsv(rng, (0, 20), (0.75, 1.0), (0.75, 1.0))
    a, b = corners[1], corners[2]
    normal = np.array([b[1] - a[1], a[0] - b[0]]) / np.linalg.norm(b - a)
    phase = (u * normal[0] + v * normal[1]) / rng.uniform(7.0, 14.0)  # stripes parallel to side 1-2
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * phase)
    return dist, colour * (1.0 - 0.35 * _smoothstep(0.3, 0.7, stripes))[..., None]


def _capsule(rng, u, v, radius):  # bottle: teal, cylinder-shaded
    thick = radius * rng.uniform(0.3, 0.42)
    half = radius - thick
    dist = np.hypot(np.maximum(np.abs(u) - half, 0.0), v) - thick
    colour = _hsv(rng, (165, 190), (0.6, 0.95), (0.65, 0.95))
    across = np.clip(v / thick, -1.0, 1.0)
    light = rng.uniform(-0.5, 0.5)
    shade = 0.5 + 0.5 * np.sqrt(np.clip(1.0 - across**2, 0.0, 1.0))
    highlight = 0.35 * np.exp(-(((across - light) / 0.15) ** 2))
    return dist, colour * shade[..., None] + highlight[..., None]


def _disc(rng, u, v, radius):  # potted plant: green, mottled
    dist = np.hypot(u, v) - radius
    colour = _hsv(rng, (95, 135), (0.6, 0.95), (0.5, 0.85))
    h, w = u.shape
    mottle = _value_noise(rng, h, w, (4, 8)) if min(h, w) >= 2 else np.zeros_like(u)
    return dist, colour * (0.65 + 0.55 * mottle)[..., None]


def _rectangle(rng, u, v, radius):  # tv/monitor: blue screen in a dark frame
    aspect = rng.uniform(1.25, 1.8)
    half_u, half_v = radius * np.array([aspect, 1.0]) / math.hypot(aspect, 1.0)
    qu, qv = np.abs(u) - half_u, np.abs(v) - half_v
    dist = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0)) + np.minimum(np.maximum(qu, qv), 0.0)
    screen = _hsv(rng, (215, 255), (0.55, 0.9), (0.75, 1.0))
    frame = _hsv(rng, (215, 255), (0.3, 0.6), (0.25, 0.4))
    border = half_v * rng.uniform(0.12, 0.22)
    lines = 0.88 + 0.12 * np.sin(2 * math.pi * v / rng.uniform(3.0, 5.0))
    inside_frame = _smoothstep(-border + 0.5, -border - 0.5, dist)  # 1 on the screen, 0 on the frame
    rgb = frame + inside_frame[..., None] * (screen * lines[..., None] - frame)
    return dist, rgb


_SHAPES = {3: _crescent, 4: _triangle, 5: _capsule, 16: _disc, 20: _rectangle}
_OBJECT_CLASSES = tuple(_SHAPES)
_EXTENT = (0.35, 0.7)  # an object's extent (2 x radius), as a share of the image's shorter side
# Thin shapes fill less of their circle: draw them larger so every class gets a similar
# share of the pixels (about 4-6 % each, background about 75 %).
_SCALE = {3: 1.2, 4: 1.25, 5: 1.1, 16: 0.85, 20: 1.1}


def _place_objects(rng: np.random.Generator, height: int, width: int) -> List[Tuple[int, float, float, float, float]]:
    """1..4 objects ``(class, cx, cy, radius, angle)``, each fully inside the image."""
    placed: List[Tuple[int, float, float, float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        cls = _OBJECT_CLASSES[int(rng.integers(len(_OBJECT_CLASSES)))]
        radius = 0.5 * rng.uniform(*_EXTENT) * _SCALE[cls] * min(height, width)
        angle = rng.uniform(0.0, 2 * math.pi)
        # Up to 12 tries to keep clear of the others: overlaps happen, total occlusion is rare.
        for _ in range(12):
            cx = rng.uniform(radius + 1, width - radius - 1)
            cy = rng.uniform(radius + 1, height - radius - 1)
            if all(math.hypot(cx - x, cy - y) > 0.75 * (radius + r) for _, x, y, r, _ in placed):
                break
        placed.append((cls, cx, cy, radius, angle))
    return placed


def _render_example(background_rng: np.random.Generator, objects_rng: np.random.Generator,
                    photos: Sequence[Image.Image] = (), height: int = 320,
                    width: int = 480) -> Tuple[np.ndarray, np.ndarray]:
    """One synthetic example: ``(uint8 np.ndarray[height, width, 3], uint8 np.ndarray[height, width])``.

    Objects are composited back to front with antialiased edges (coverage ``0.5 - distance``);
    a pixel's label is the frontmost object whose shape contains the pixel centre, so the
    label agrees with the majority colour of every edge pixel and occlusion is exact.
    """
    image = _background(background_rng, photos, height, width)
    label = np.zeros((height, width), np.uint8)
    for cls, cx, cy, radius, angle in _place_objects(objects_rng, height, width):
        x0, x1 = max(int(cx - radius) - 2, 0), min(math.ceil(cx + radius) + 3, width)
        y0, y1 = max(int(cy - radius) - 2, 0), min(math.ceil(cy + radius) + 3, height)
        xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        cos, sin = math.cos(angle), math.sin(angle)
        u, v = cos * xs + sin * ys, -sin * xs + cos * ys
        dist, rgb = _SHAPES[cls](objects_rng, u, v, radius)
        alpha = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
        patch = image[y0:y1, x0:x1]
        patch[...] = patch * (1.0 - alpha) + np.clip(rgb, 0.0, 1.0) * alpha
        label[y0:y1, x0:x1][dist < 0] = cls
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), label


def _label_png(label: np.ndarray) -> Image.Image:
    """uint8 class indices -> a palette PNG image with VOC's 256 colours, as VOC's own files."""
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    image.putpalette(_PALETTE.tobytes())
    return image


def _example_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def generate_voc_synthetic(
    root: PathLike,
    seed: int = 0,
    num_train: int = _DEFAULTS["num_train"],
    num_val: int = _DEFAULTS["num_val"],
    progress: ProgressCallback = None,
    *,
    height: int = _DEFAULTS["height"],
    width: int = _DEFAULTS["width"],
) -> Path:
    """Write a synthetic segmentation set in the VOC 2012 layout (see :data:`SYNTH_CLASSES`).

    ``root`` becomes a ``VOC2012``-style folder: ``JPEGImages/{split}_{index:06d}.jpg``
    (quality 95, no chroma subsampling), ``SegmentationClass/*.png`` (palette PNGs with VOC's
    colours) and ``ImageSets/Segmentation/train.txt`` / ``val.txt``. Each image holds 1 to 4
    objects, 22-50 % of the shorter side across, which may overlap (the label follows the
    occlusion).

    Deterministic: the same arguments give byte-identical files (on the same numpy / Pillow /
    scikit-image versions). Each image is drawn from its own seed, derived from
    ``(seed, split, index)``: the val split never repeats a train image, and the first ``k``
    images do not depend on the counts. Without scikit-image every background is procedural
    (the images differ, the labels do not).

    Args:
        root (str or PathLike): folder to write into; created if missing.
        seed (int): >= 0.
        num_train (int): >= 1 training images.
        num_val (int): >= 1 validation images.
        progress (callable, optional): called as ``progress(done, total)`` after each image.
        height (int): image height in [32, 4096]; the book crops 320.
        width (int): image width in [32, 4096]; the book crops 480.

    Returns:
        Path: ``root``.
    """
    _check_int("seed", seed, 0)
    _check_int("num_train", num_train, 1)
    _check_int("num_val", num_val, 1)
    _check_int("height", height, 32, 4096)
    _check_int("width", width, 32, 4096)
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    photos = _photos()
    total, done = num_train + num_val, 0
    for split, count in (("train", num_train), ("val", num_val)):
        names = []
        for index in range(count):
            image, label = _render_example(*_image_rngs(seed, split, index), photos, int(height), int(width))
            name = _example_name(split, index)
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", format="JPEG", quality=95, subsampling=0)
            _label_png(label).save(root / "SegmentationClass" / f"{name}.png", format="PNG", compress_level=1)
            names.append(name)
            done += 1
            if progress is not None:
                progress(done, total)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return root


# --- the synthetic set: the cache -----------------------------------------------------------

def _cache_dir(seed: int, num_train: int, num_val: int, height: int, width: int) -> Path:
    parent = os.environ.get("VISION_LAB_DATA")
    base = Path(parent).expanduser() if parent else Path.home() / ".cache" / "vision_lab"
    name = f"voc-synthetic-v{GENERATOR_VERSION}-seed{seed}"
    if (num_train, num_val) != (_DEFAULTS["num_train"], _DEFAULTS["num_val"]):
        name += f"-n{num_train}-{num_val}"
    if (height, width) != (_DEFAULTS["height"], _DEFAULTS["width"]):
        name += f"-{height}x{width}"
    return base / name


def synthetic_voc_dir(
    seed: int = 0,
    *,
    num_train: int = _DEFAULTS["num_train"],
    num_val: int = _DEFAULTS["num_val"],
    height: int = _DEFAULTS["height"],
    width: int = _DEFAULTS["width"],
    progress: ProgressCallback = None,
) -> Path:
    """The cached synthetic set's folder, generated on first use.

    ``$VISION_LAB_DATA/voc-synthetic-v{GENERATOR_VERSION}-seed{seed}`` (default parent
    ``~/.cache/vision_lab``); other counts add ``-n{T}-{V}``, another size ``-{H}x{W}``. The
    set is generated beside it and renamed into place, so an interrupted run leaves no
    half-written cache and two racing processes both end up reading one complete copy.

    Args:
        seed, num_train, num_val, height, width, progress: as :func:`generate_voc_synthetic`.

    Returns:
        Path: a folder :func:`read_voc_images` reads.
    """
    _check_int("seed", seed, 0)
    _check_int("num_train", num_train, 1)
    _check_int("num_val", num_val, 1)
    _check_int("height", height, 32, 4096)
    _check_int("width", width, 32, 4096)
    cache = _cache_dir(int(seed), int(num_train), int(num_val), int(height), int(width))
    if _has_layout(cache):
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.parent / f".{cache.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        generate_voc_synthetic(tmp, seed=seed, num_train=num_train, num_val=num_val, progress=progress,
                               height=height, width=width)
        try:
            os.replace(tmp, cache)
        except OSError:
            if not _has_layout(cache):
                raise ValueError(f"cache folder {cache} exists but is incomplete (no ImageSets/Segmentation/"
                                 "train.txt and val.txt): delete it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def load_voc(root: Optional[PathLike] = None, is_train: bool = True, seed: int = 0,
             **synthetic) -> Tuple[List[Tensor], List[Tensor]]:
    """:func:`read_voc_images` of ``root``, or of the cached synthetic set when ``root`` is None.

    Args:
        root (str or PathLike, optional): a VOC-layout folder (real or generated).
        is_train (bool): the train split, else val.
        seed (int): >= 0; only used for the synthetic set.
        **synthetic: ``num_train``, ``num_val``, ``height``, ``width``, ``progress`` for
            :func:`synthetic_voc_dir`; only used when ``root`` is None.
    """
    voc_dir = root if root is not None else synthetic_voc_dir(seed, **synthetic)
    return read_voc_images(voc_dir, is_train)


def load_data_voc(
    batch_size: int,
    crop_size: Tuple[int, int],
    root: Optional[PathLike] = None,
    seed: int = 0,
    *,
    num_workers: int = 0,
    void_index: Optional[int] = None,
    **synthetic,
) -> Tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """The book's ``load_data_voc``: ``(train_iter, test_iter)`` of random crops.

    As the book, the train loader shuffles and both drop their last partial batch. Without
    ``root`` it reads the cached synthetic set (generated on first use), never the network;
    :func:`download_voc` fetches the real one.

    Args:
        batch_size (int): >= 1, and at most the number of images each split keeps.
        crop_size ((int, int)): ``(height, width)``.
        root (str or PathLike, optional): a VOC-layout folder; see :func:`read_voc_images`.
        seed (int): >= 0; only used for the synthetic set.
        num_workers (int): DataLoader worker processes, >= 0 (the book uses 4).
        void_index (int, optional): as :class:`VOCSegDataset`.
        **synthetic: as :func:`load_voc`.
    """
    _check_int("batch_size", batch_size, 1)
    crop_size = _check_crop_size(crop_size)
    _check_int("num_workers", num_workers, 0)
    _check_void_index(void_index)
    voc_dir = root if root is not None else synthetic_voc_dir(seed, **synthetic)
    loaders = []
    for is_train in (True, False):
        data = VOCSegDataset(is_train, crop_size, voc_dir, void_index=void_index)
        if len(data) < batch_size:
            split = "train" if is_train else "val"
            raise ValueError(
                f"batch_size must be at most {len(data)}, the number of {split} images at least crop_size "
                f"{crop_size} ({data.num_dropped} smaller dropped), got {batch_size}: "
                "batches drop the last partial one")
        loaders.append(torch.utils.data.DataLoader(data, batch_size, shuffle=is_train, drop_last=True,
                                                   num_workers=num_workers))
    return loaders[0], loaders[1]


# --- the real data set: download ------------------------------------------------------------

class VOCDownloadError(ValueError):
    """The VOC archive cannot be fetched or used: offline, a network error, a wrong checksum, an unsafe archive."""


def _check_member(member: tarfile.TarInfo) -> None:
    """Refuse a member that could write outside the extraction folder."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise VOCDownloadError(f"unsafe archive: member {name!r} is an absolute path or climbs out with '..'")
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        # A symlink's target is relative to its own folder, a hard link's to the archive's root.
        base = PurePosixPath(*parts[:-1]) if member.issym() else PurePosixPath()
        depth = 0
        for part in (base / target).parts if not target.startswith("/") else ("..",):
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                raise VOCDownloadError(f"unsafe archive: link {name!r} -> {member.linkname!r} points outside it")
    elif not (member.isfile() or member.isdir()):
        raise VOCDownloadError(f"unsafe archive: member {name!r} is a device, FIFO or other special file")


def _extract(archive: Path, root: Path) -> Iterator[Progress]:
    """Extract VOC2012 from ``archive`` into ``root/VOCdevkit/VOC2012``, checking every member first."""
    tmp = root / f".voc-extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            total = len(members)
            for k, member in enumerate(members, start=1):
                # filter="data" is a second guard (Python >= 3.11.4): it also drops odd permissions.
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                else:  # pragma: no cover - older Pythons; the members were checked above
                    tar.extract(member, tmp)
                if k % 500 == 0 or k == total:
                    yield Progress(k, total, message=f"extracting {k}/{total} files")
        extracted = tmp / "VOCdevkit" / "VOC2012"
        if not (extracted / "ImageSets" / "Segmentation").is_dir():
            raise VOCDownloadError(f"{archive.name} has no VOCdevkit/VOC2012/ImageSets/Segmentation folder")
        target = root / "VOCdevkit" / "VOC2012"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(extracted, target)
        except OSError:
            raise VOCDownloadError(f"{target} exists but is incomplete: delete it and try again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_voc_records(root: PathLike, *, url: str = VOC_URL, keep_archive: bool = False,
                         chunk_size: int = 1 << 20) -> Iterator[Progress]:
    """Download, verify and extract VOC 2012 into ``root/VOCdevkit/VOC2012``, as a long job.

    Steps, each skipped when its result is already there: an extracted copy is used as is; an
    archive ``root/VOCtrainval_11-May-2012.tar`` (say, copied in by hand) is checked and
    extracted without the network; otherwise the archive is streamed from ``url`` into a
    temporary file (refused before any connection when ``VISION_LAB_OFFLINE`` is set), its
    SHA-1 compared with :data:`VOC_SHA1`, and every member checked (no absolute paths, no
    ``..``, no link pointing outside, no special file) before anything is extracted.

    Yields:
        Progress: per downloaded chunk (``step``/``total`` in bytes), then per 500 extracted
        files (``step``/``total`` in files); the last record has ``done=True`` and the
        VOC2012 folder in its message.

    Raises:
        VOCDownloadError (a ValueError): offline, network failure, checksum mismatch, unsafe
            or unexpected archive.
    """
    _check_int("chunk_size", chunk_size, 1)
    root = Path(root)
    target = root / "VOCdevkit" / "VOC2012"
    if _has_layout(target):
        yield Progress(1, 1, message=f"VOC 2012 already in {target}", done=True)
        return
    archive = root / VOC_ARCHIVE
    expected = VOC_SHA1  # read at call time, so a test can swap it
    if archive.is_file():
        if file_digest(archive, "sha1") != expected:
            raise VOCDownloadError(
                f"{archive} does not match the expected SHA-1 {expected}: delete it and download again")
        yield from _extract(archive, root)
    else:
        if offline():
            raise VOCDownloadError(
                "VISION_LAB_OFFLINE is set, so VOC 2012 is not downloaded: unset it, or put "
                f"{VOC_ARCHIVE} in {root} yourself; generate_voc_synthetic() is the offline alternative")
        root.mkdir(parents=True, exist_ok=True)
        part = root / f".{VOC_ARCHIVE}.part-{os.getpid()}"
        try:
            yield from fetch_records(url, part, label="VOC 2012", expected_bytes=_VOC_ARCHIVE_BYTES,
                                     chunk_size=chunk_size, error=VOCDownloadError)
            got = file_digest(part, "sha1")
            if got != expected:
                raise VOCDownloadError(f"downloaded file from {url} has SHA-1 {got}, expected {expected}: "
                                       "the download is corrupt or not the VOC 2012 archive")
            yield from _extract(part, root)
            if keep_archive:
                os.replace(part, archive)
        finally:
            part.unlink(missing_ok=True)
    yield Progress(1, 1, message=f"VOC 2012 ready in {target}", done=True)


def download_voc(root: PathLike, progress: ProgressCallback = None, *, url: str = VOC_URL,
                 keep_archive: bool = False) -> Path:
    """Run :func:`download_voc_records` to the end; returns the ``VOC2012`` folder.

    Args:
        root (str or PathLike): folder for ``VOCdevkit/VOC2012`` (and the archive, if kept).
        progress (callable, optional): ``progress(done, total)`` per record: bytes while
            downloading, then files while extracting.
        url (str): where to fetch the archive from.
        keep_archive (bool): keep the verified ``.tar`` in ``root`` after extracting.
    """
    for record in download_voc_records(root, url=url, keep_archive=keep_archive):
        if progress is not None:
            progress(record.step, record.total)
    return Path(root) / "VOCdevkit" / "VOC2012"


# --- metrics --------------------------------------------------------------------------------

def _predictions(pred: Tensor, label: Tensor) -> Tensor:
    if pred.dim() == label.dim() + 1 and pred.is_floating_point():  # scores (N, C, H, W): take the argmax
        pred = pred.argmax(dim=1)
    if pred.shape != label.shape:
        raise ValueError(f"pred must have label's shape {tuple(label.shape)} (or be scores with classes on dim 1), "
                         f"got {tuple(pred.shape)}")
    return pred


def pixel_accuracy(pred: Tensor, label: Tensor, ignore_index: Optional[int] = VOID_INDEX) -> Tensor:
    """Share of pixels whose predicted class is right, pixels labelled ``ignore_index`` left out.

    Args:
        pred (Tensor[N, H, W] or Tensor[N, C, H, W]): class indices, or float scores (argmax on dim 1).
        label (Tensor[N, H, W]): class indices (any shape, as long as ``pred`` matches).
        ignore_index (int, optional): label value to leave out; None counts every pixel.

    Returns:
        Tensor[]: float32 in [0, 1]; NaN when no pixel counts.
    """
    pred = _predictions(pred, label)
    valid = label != ignore_index if ignore_index is not None else torch.ones_like(label, dtype=torch.bool)
    correct = ((pred == label) & valid).sum()
    return correct.float() / valid.sum().float()


def confusion_matrix(pred: Tensor, label: Tensor, num_classes: int,
                     ignore_index: Optional[int] = VOID_INDEX) -> Tensor:
    """Pixel counts by (true class, predicted class), in one ``bincount``.

    Args:
        pred (Tensor[N, H, W] or Tensor[N, C, H, W]): class indices in [0, num_classes), or scores.
        label (Tensor[N, H, W]): class indices in [0, num_classes), or ``ignore_index``.
        num_classes (int): >= 1.
        ignore_index (int, optional): label value to leave out.

    Returns:
        Tensor[num_classes, num_classes]: int64; row = true class, column = predicted class
        (torchmetrics' orientation), on the inputs' device.
    """
    _check_int("num_classes", num_classes, 1)
    pred = _predictions(pred, label)
    valid = label != ignore_index if ignore_index is not None else torch.ones_like(label, dtype=torch.bool)
    label, pred = label[valid].long(), pred[valid].long()
    bad = (label < 0) | (label >= num_classes) | (pred < 0) | (pred >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"pred and label must hold class indices in [0, {num_classes - 1}] (label may also be "
                         f"ignore_index={ignore_index}), got values outside")
    counts = torch.bincount(label * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confmat: Tensor) -> Tensor:
    """Intersection over union of every class: ``Tensor[C]`` float32, NaN for a class that is
    neither in the labels nor in the predictions.

    Args:
        confmat (Tensor[C, C]): from :func:`confusion_matrix`.
    """
    if not isinstance(confmat, Tensor) or confmat.dim() != 2 or confmat.shape[0] != confmat.shape[1]:
        got = tuple(confmat.shape) if isinstance(confmat, Tensor) else type(confmat).__name__
        raise ValueError(f"confmat must be a square Tensor[C, C] from confusion_matrix(), got {got}")
    confmat = confmat.double()  # counts above 2**24 stay exact
    hits = confmat.diagonal()
    union = confmat.sum(0) + confmat.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, math.nan)).float()


def mean_iou(confmat: Tensor) -> Tensor:
    """Mean IoU over the classes present in labels or predictions (torchmetrics' macro
    ``MulticlassJaccardIndex``): ``Tensor[]`` float32, NaN for an empty matrix.

    Args:
        confmat (Tensor[C, C]): from :func:`confusion_matrix`.
    """
    return iou_per_class(confmat).nanmean()
