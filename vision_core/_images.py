"""Image files as the command line reads them, and the limits every image path shares.

The limits are checked on the file's header, before a pixel is decoded, so a small file that
declares a huge picture (a decompression bomb) costs nothing. The dashboard's pages import the
same numbers (one place each):

- ``MAX_IMAGE_PIXELS``: at most 40 megapixels (about 7000 x 5700);
- ``MAX_IMAGE_SIDE``: at most 16383 px a side, the most WebP (how the pages send pictures) holds;
- ``MAX_ASPECT_RATIO``: the longer side at most 20 times the shorter, so enlarging the short
  side for display can never make a picture that is mostly memory;
- ``MIN_IMAGE_SIDE``: at least 2 px a side.

Only the first frame of an animated file (GIF, WebP, APNG) is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ._checks import ArgumentError

__all__ = ["MAX_IMAGE_PIXELS", "MAX_IMAGE_SIDE", "MAX_ASPECT_RATIO", "MIN_IMAGE_SIDE", "ImageFileError",
           "check_image_size", "read_image_file"]

MAX_IMAGE_PIXELS = 40_000_000
# WebP, the format Gradio sends pictures to the page in, stops at 16383 px a side.
MAX_IMAGE_SIDE = 16383
# Longer side / shorter side. A phone's panorama is about 1:4, a 360-degree one 1:8; beyond 1:20 a
# picture is a strip no panel can show, and enlarging its short side for display (SSD's views
# enlarge small pictures to 512 px) would blow it up by its length: an 8 x 20000 PNG of 574 bytes did.
MAX_ASPECT_RATIO = 20
MIN_IMAGE_SIDE = 2


class ImageFileError(ValueError):
    """A file that is not an image this project reads: missing, unreadable, not an image, or outside the limits."""


def check_image_size(width: int, height: int, name: str = "image") -> None:
    """Raise :class:`ArgumentError` unless a ``width x height`` picture is within the limits above."""
    size = f"{width} x {height} px"
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ArgumentError(name, f"at least {MIN_IMAGE_SIDE} px a side", size)
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ArgumentError(name, f"at most {MAX_IMAGE_SIDE} px a side", size)
    if width * height > MAX_IMAGE_PIXELS:
        raise ArgumentError(name, f"at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels", size)
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ArgumentError(name, f"at most {MAX_ASPECT_RATIO}:1 between its longer and shorter side", size)


def read_image_file(path: str | Path, name: str = "image") -> np.ndarray:
    """The first frame of an image file as ``uint8 [H, W, 3]`` RGB (alpha dropped, grey repeated).

    The size is checked on the header (:func:`check_image_size`) before anything is decoded;
    an animated file gives its first frame only, never the whole sequence.

    Raises:
        ImageFileError: ``path`` is missing, a folder, unreadable, not an image PIL can read,
            truncated, or outside the limits; the message names ``name`` and ``path``.
    """
    from PIL import Image

    path = Path(path)
    where = f"{name} {str(path)!r}"
    if not path.is_file():
        raise ImageFileError(f"{where} is a folder, not an image file" if path.is_dir() else f"{where} does not exist")
    try:
        # PIL reads the header only here. Its own bomb limit turns into an error rather than
        # a warning, so every file over it is refused (PIL's number may differ from ours).
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_image_size(*image.size, name=name)
                image.seek(0)  # the first frame: an animated file is never decoded as a whole
                return np.array(image.convert("RGB"))  # a writable copy: torch.from_numpy warns on read-only
    except ArgumentError as err:
        raise ImageFileError(f"{where}: {err}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageFileError(f"{where} declares more than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                             "(the limit; a decompression bomb?)") from None
    except PermissionError:
        raise ImageFileError(f"{where} could not be opened: permission denied") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # not an image, truncated, corrupt
        detail = " ".join(str(err).split())[:160]
        raise ImageFileError(f"{where} could not be read as an image ({type(err).__name__}: {detail}); "
                             "use a PNG, JPEG, GIF or WebP file") from None
