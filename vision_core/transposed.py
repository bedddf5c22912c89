"""Transposed convolution and the bilinear upsampling kernel (d2l 14.10, 14.11).

A transposed convolution runs a convolution's data flow backwards: every input cell
scatters a copy of the kernel, scaled by the cell's value, onto the output, and overlapping
copies add up. With stride ``s`` the copies start ``s`` cells apart; padding ``p`` crops
``p`` cells from each side of the result. Per spatial dimension the output has

    ``n' = s * n + k - 2 * p - s``

cells, so a transposed convolution with the same ``k``, ``s``, ``p`` maps a convolution's
output size back to its input size (up to the rounding in the convolution's formula).

* :func:`trans_conv` is the book's single-channel reference definition.
* :func:`trans_conv2d` is the general multi-channel version, equal to
  ``torch.nn.functional.conv_transpose2d`` (kernel layout ``[C_in, C_out, kh, kw]``, as in
  ``nn.ConvTranspose2d.weight``); :func:`trans_conv_by_conv` builds the same thing from an
  ordinary convolution, the book's way, via :func:`dilate_and_pad`.
* :func:`trans_conv_steps` replays the scatter one input cell at a time for the dashboard.
* :func:`bilinear_kernel` and :func:`bilinear_upsample` are FCN's upsampling initialisation.

Everything runs on the inputs' device and is differentiable; only :func:`trans_conv_steps`
loops in Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import ArgumentError, check_int, describe, is_int

__all__ = [
    "MAX_STEP_INPUT",
    "TransConvStep",
    "bilinear_kernel",
    "bilinear_upsample",
    "dilate_and_pad",
    "trans_conv",
    "trans_conv2d",
    "trans_conv_by_conv",
    "trans_conv_output_size",
    "trans_conv_steps",
]

IntOrPair = int | tuple[int, int]

# trans_conv_steps keeps two grid-sized tensors per input cell; 8 x 8 cells is already more
# steps than a learner clicks through.
MAX_STEP_INPUT = 8


# --- argument checks ------------------------------------------------------------------------

def _check_any_int(value: Any, name: str, lo: int | None) -> int:
    # check_int, or any integer at all when there is no lower end (a pad may crop).
    if lo is not None:
        return check_int(value, name, lo)
    if not is_int(value):
        raise ArgumentError(name, "an integer", repr(value))
    return int(value)


def _int_or_pair(value: Any, name: str, lo: int | None = None) -> tuple[int, int]:
    # An int, or (height, width) like nn.ConvTranspose2d's stride and padding.
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ArgumentError(name, "an integer or a pair (height, width)", repr(value))
        return _check_any_int(value[0], f"{name}[0]", lo), _check_any_int(value[1], f"{name}[1]", lo)
    single = _check_any_int(value, name, lo)
    return single, single


def _check_operands(X: Tensor, K: Tensor, ndim: int, x_shape: str, k_shape: str) -> tuple[Tensor, Tensor]:
    # Shapes, device and dtype of an input / kernel pair; returns both in their common dtype.
    for name, t, shape in (("X", X, x_shape), ("K", K, k_shape)):
        if not isinstance(t, Tensor) or t.dim() != ndim:
            raise ArgumentError(name, f"a tensor of shape {shape}", describe(t))
        if t.shape[-1] < 1 or t.shape[-2] < 1:
            raise ArgumentError(name, f"a tensor of shape {shape} with height and width >= 1", describe(t))
        if not t.is_floating_point():
            raise ArgumentError(name, "floating point", str(t.dtype))
    _check_same_device(X, K)
    dtype = torch.promote_types(X.dtype, K.dtype)
    return X.to(dtype), K.to(dtype)


def _check_same_device(X: Tensor, K: Tensor) -> None:
    if X.device != K.device:
        raise ArgumentError("X and K", "on the same device", f"{X.device} and {K.device}")


def _output_size(n: int, k: int, stride: int, padding: int, dim: str) -> int:
    size = stride * n + k - 2 * padding - stride
    if size < 1:
        # size >= 1  <=>  2 * padding <= stride * (n - 1) + k - 1
        largest = (stride * (n - 1) + k - 1) // 2
        raise ArgumentError(f"the {dim} padding",
                            f"<= {largest} here, for an output {dim} stride*n + k - 2*padding - stride >= 1",
                            f"{padding}: {stride}*{n} + {k} - 2*{padding} - {stride} = {size}")
    return size


def _check_conv_args(X: Tensor, K: Tensor, stride: IntOrPair, padding: IntOrPair, ndim: int
                     ) -> tuple[Tensor, Tensor, tuple[int, int], tuple[int, int], tuple[int, int]]:
    if ndim == 4:
        X, K = _check_operands(X, K, 4, "[N, C_in, H, W]", "[C_in, C_out, kh, kw]")
    else:
        X, K = _check_operands(X, K, 2, "[h, w]", "[kh, kw]")
    if X.dim() == 4 and X.shape[1] != K.shape[0]:
        raise ArgumentError("X", f"a Tensor[N, C_in, H, W] with C_in = {K.shape[0]}, as K [C_in, C_out, kh, kw] "
                            "expects", f"C_in = {X.shape[1]}")
    stride = _int_or_pair(stride, "stride", 1)
    padding = _int_or_pair(padding, "padding", 0)
    out_hw = tuple(
        _output_size(X.shape[-2 + d], K.shape[-2 + d], stride[d], padding[d], dim)
        for d, dim in enumerate(("height", "width"))
    )
    return X, K, stride, padding, out_hw


# --- the book's reference -------------------------------------------------------------------

def trans_conv(X: Tensor, K: Tensor) -> Tensor:
    """The book's basic transposed convolution: one channel, stride 1, no padding.

    Each input cell ``X[i, j]`` adds ``X[i, j] * K`` to the output window whose top-left
    corner is ``(i, j)``. The book writes this as a double loop over the cells; here every
    scaled copy of the kernel is built at once and ``F.fold`` adds the overlapping copies.

    Like the book, which accumulates into a ``torch.zeros`` of the default dtype, integer
    inputs are accepted and give a result in the default float dtype; float inputs keep
    their (common) dtype.

    Args:
        X (Tensor[h, w]): the input.
        K (Tensor[kh, kw]): the kernel.

    Returns:
        Tensor[h + kh - 1, w + kw - 1]: the output.
    """
    for name, t in (("X", X), ("K", K)):
        if not isinstance(t, Tensor) or t.dim() != 2 or t.numel() == 0:
            raise ArgumentError(name, "a non-empty tensor of shape [h, w]", describe(t))
        if t.is_complex():
            raise ArgumentError(name, "real", str(t.dtype))
    _check_same_device(X, K)
    dtype = torch.promote_types(X.dtype, K.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    X, K = X.to(dtype), K.to(dtype)
    (h, w), (kh, kw) = X.shape, K.shape
    copies = X[:, :, None, None] * K  # [h, w, 1, 1] * [kh, kw] -> [h, w, kh, kw]
    # fold wants one column per sliding window: [kh * kw, h * w], windows in row-major order.
    columns = copies.permute(2, 3, 0, 1).reshape(kh * kw, h * w)
    return F.fold(columns, (h + kh - 1, w + kw - 1), (kh, kw))[0]


# --- general transposed convolution ---------------------------------------------------------

def trans_conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """Output size of a transposed convolution along one dimension: ``(n - 1)*s - 2*p + k``.

    Each of the ``n`` input cells puts a ``k``-wide copy of the kernel ``s`` cells after the
    previous one, so the copies span ``(n - 1)*s + k`` cells, and padding crops ``p`` from each
    end. It is also the size the zero-insertion construction gives: ``s - 1`` zeros between
    cells and ``k - 1 - p`` on each side make ``z = (n - 1)*s + 1 + 2*(k - 1 - p)`` cells, and a
    stride-1 convolution with ``k`` leaves ``z - k + 1`` of them.

    The value is returned as computed; one below 1 means there is no output for these
    arguments (:func:`trans_conv2d` and ``F.conv_transpose2d`` reject them).

    Args:
        n (int): input size, >= 1.
        k (int): kernel size, >= 1.
        stride (int): >= 1.
        padding (int): >= 0.

    Returns:
        int: the output size.
    """
    n = check_int(n, "n", 1)
    k = check_int(k, "k", 1)
    stride = check_int(stride, "stride", 1)
    padding = check_int(padding, "padding", 0)
    return (n - 1) * stride - 2 * padding + k


def trans_conv2d(X: Tensor, K: Tensor, stride: IntOrPair = 1, padding: IntOrPair = 0) -> Tensor:
    """Multi-channel 2-D transposed convolution, equal to ``F.conv_transpose2d(X, K, None, stride, padding)``.

    Output channel ``o`` is the sum over input channels ``c`` of the single-channel
    transposed convolution of ``X[:, c]`` with ``K[c, o]``, with the kernel copies placed
    ``stride`` cells apart, then ``padding`` cells cropped from each side. One matrix
    product makes every scaled kernel copy and ``F.fold`` adds the overlaps; no Python loop.

    The arguments are valid exactly when ``F.conv_transpose2d`` accepts them: each output
    size :func:`trans_conv_output_size` must be at least 1. Padding as large as the kernel
    or larger is fine as long as that holds (it then crops away whole kernel copies).

    Args:
        X (Tensor[N, C_in, H, W]): floating-point input.
        K (Tensor[C_in, C_out, kh, kw]): floating-point kernel, laid out like
            ``nn.ConvTranspose2d.weight``.
        stride (int or tuple[int, int]): >= 1, one value or ``(height, width)``.
        padding (int or tuple[int, int]): >= 0, one value or ``(height, width)``.

    Returns:
        Tensor[N, C_out, H', W']: with ``H' = sh*H + kh - 2*ph - sh`` and likewise ``W'``,
        in the common dtype of ``X`` and ``K``.
    """
    X, K, stride, padding, out_hw = _check_conv_args(X, K, stride, padding, 4)
    kh, kw = K.shape[-2:]
    # [N, C_in, H*W] x [C_in, C_out*kh*kw] -> [N, C_out*kh*kw, H*W]: one scaled kernel copy per
    # input cell, summed over input channels, in the column layout fold expects.
    columns = torch.einsum("ncl,cm->nml", X.flatten(2), K.flatten(1))
    # fold's own padding crops the result: it lays the copies out on the padded grid and
    # returns only its interior, which is what padding means for a transposed convolution.
    return F.fold(columns, out_hw, (kh, kw), padding=padding, stride=stride)


def dilate_and_pad(X: Tensor, stride: IntOrPair, pad: IntOrPair) -> Tensor:
    """Insert ``stride - 1`` zeros between rows and between columns, then pad by ``pad``.

    The input that an ordinary convolution sees in :func:`trans_conv_by_conv`. A negative
    ``pad`` crops instead, which that construction needs when the transposed convolution's
    padding is at least the kernel size.

    Args:
        X (Tensor[..., H, W]): input, any leading dimensions.
        stride (int or tuple[int, int]): >= 1, one value or ``(height, width)``.
        pad (int or tuple[int, int]): zeros added on each side (cells removed if negative),
            one value or ``(height, width)``.

    Returns:
        Tensor[..., sh*(H-1) + 1 + 2*ph, sw*(W-1) + 1 + 2*pw]: in ``X``'s dtype and device.
    """
    if not isinstance(X, Tensor) or X.dim() < 2 or X.shape[-1] < 1 or X.shape[-2] < 1:
        raise ArgumentError("X", "a tensor of shape [..., H, W] with H, W >= 1", describe(X))
    sh, sw = _int_or_pair(stride, "stride", 1)
    ph, pw = _int_or_pair(pad, "pad")
    h, w = X.shape[-2:]
    dilated_hw = (sh * (h - 1) + 1, sw * (w - 1) + 1)
    for dim, size, p in zip(("height", "width"), dilated_hw, (ph, pw)):
        if size + 2 * p < 1:
            raise ArgumentError(f"the {dim} pad", f">= {-((size - 1) // 2)}",
                                f"{p}, which crops the whole {dim} ({size} after inserting zeros)")
    dilated = X.new_zeros(*X.shape[:-2], *dilated_hw)
    dilated[..., ::sh, ::sw] = X
    return F.pad(dilated, (pw, pw, ph, ph))  # negative amounts crop


def trans_conv_by_conv(X: Tensor, K: Tensor, stride: IntOrPair = 1, padding: IntOrPair = 0) -> Tensor:
    """:func:`trans_conv2d` computed the book's way, with an ordinary convolution.

    Insert ``s - 1`` zeros between the rows and columns of ``X``, pad it by ``k - p - 1`` on
    each side (:func:`dilate_and_pad`), and convolve (stride 1, no padding) with the kernel
    flipped left-right and upside-down and with its input and output channels swapped.

    Args:
        X (Tensor[N, C_in, H, W]): floating-point input.
        K (Tensor[C_in, C_out, kh, kw]): floating-point kernel (``nn.ConvTranspose2d`` layout).
        stride (int or tuple[int, int]): >= 1.
        padding (int or tuple[int, int]): >= 0.

    Returns:
        Tensor[N, C_out, H', W']: the same as :func:`trans_conv2d`, up to rounding.
    """
    X, K, stride, padding, _ = _check_conv_args(X, K, stride, padding, 4)
    kh, kw = K.shape[-2:]
    Z = dilate_and_pad(X, stride, (kh - 1 - padding[0], kw - 1 - padding[1]))
    # conv2d wants [C_out, C_in, kh, kw] and computes a correlation, hence swap and flip.
    weight = K.transpose(0, 1).flip(-2, -1)
    return F.conv2d(Z, weight)


# --- step-through ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TransConvStep:
    """One input cell's contribution to a single-channel transposed convolution.

    Coordinates are ``(row, column)``. The *grid* is the output before cropping the padding,
    ``(sh*(h-1) + kh, sw*(w-1) + kw)`` cells; the output is the grid without ``ph`` rows and
    ``pw`` columns on each side.

    Attributes:
        step: 0-based index of this cell in row-major order.
        total: number of steps, ``h * w``.
        row, col: the input cell.
        value: ``X[row, col]``.
        contribution: Tensor[grid_h, grid_w], ``value * K`` placed on the grid, zeros elsewhere.
        running: Tensor[H', W'], the sum of the contributions so far, cropped to the output.
        window: ``(top, left, bottom, right)`` on the grid where this cell's kernel copy lands,
            half-open like a slice: ``top = row * sh``, ``bottom = top + kh``.
    """

    step: int
    total: int
    row: int
    col: int
    value: float
    contribution: Tensor
    running: Tensor
    window: tuple[int, int, int, int]


def trans_conv_steps(
    X: Tensor, K: Tensor, stride: IntOrPair = 1, padding: IntOrPair = 0
) -> Iterator[TransConvStep]:
    """Replay a single-channel transposed convolution one input cell at a time.

    For the dashboard's step-through: this loops over the input cells in Python and keeps
    two grid-sized tensors per step, so the input is capped at :data:`MAX_STEP_INPUT` cells
    per side. Use :func:`trans_conv2d` for real work. The arguments are checked when this is
    called; the records come lazily.

    Args:
        X (Tensor[h, w]): floating-point input, ``h, w <= MAX_STEP_INPUT``.
        K (Tensor[kh, kw]): floating-point kernel.
        stride (int or tuple[int, int]): >= 1.
        padding (int or tuple[int, int]): >= 0.

    Returns:
        Iterator[TransConvStep]: ``h * w`` records; the last one's ``running`` equals
        ``trans_conv2d(X[None, None], K[None, None], stride, padding)[0, 0]``.
    """
    X, K, stride, padding, _ = _check_conv_args(X, K, stride, padding, 2)
    if max(X.shape) > MAX_STEP_INPUT:
        raise ArgumentError("X", f"at most {MAX_STEP_INPUT} x {MAX_STEP_INPUT} (trans_conv_steps replays one step per "
                            "input cell; use trans_conv2d for larger inputs)", describe(X))
    return _replay(X, K, stride, padding)


def _replay(X: Tensor, K: Tensor, stride: tuple[int, int], padding: tuple[int, int]) -> Iterator[TransConvStep]:
    (h, w), (kh, kw) = X.shape, K.shape
    (sh, sw), (ph, pw) = stride, padding
    grid_h, grid_w = sh * (h - 1) + kh, sw * (w - 1) + kw
    grid = X.new_zeros(grid_h, grid_w)
    for step in range(h * w):
        row, col = divmod(step, w)
        top, left = row * sh, col * sw
        contribution = X.new_zeros(grid_h, grid_w)
        contribution[top:top + kh, left:left + kw] = X[row, col] * K
        grid += contribution
        yield TransConvStep(
            step=step,
            total=h * w,
            row=row,
            col=col,
            value=float(X[row, col]),  # one host sync per cell: fine at display sizes
            contribution=contribution,
            running=grid[ph:grid_h - ph, pw:grid_w - pw].clone(),  # a snapshot: grid keeps changing
            window=(top, left, top + kh, left + kw),
        )


# --- bilinear upsampling (FCN) --------------------------------------------------------------

def bilinear_kernel(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """The book's bilinear-interpolation weight for ``nn.ConvTranspose2d`` (FCN, d2l 14.11).

    The filter is the outer product of a 1-D tent ``1 - |i - center| / factor`` with itself,
    where ``factor = (k + 1) // 2`` and ``center = factor - 1`` for odd ``k`` (on a cell),
    ``factor - 0.5`` for even ``k`` (between the two middle cells). It is placed on channel
    pairs the way the book's ``weight[range(in_channels), range(out_channels)] = filt``
    places it: on the diagonal when the counts are equal, on every pair when one of them is 1.
    Other counts make the book's indexing fail, and raise ``ArgumentError`` (a ``ValueError``) here.

    Args:
        in_channels (int): >= 1.
        out_channels (int): >= 1, equal to ``in_channels`` or one of the two is 1.
        kernel_size (int): >= 1.
        dtype (torch.dtype, optional): floating dtype; default: the default dtype, like the book.
        device (torch.device, optional): where to build it.

    Returns:
        Tensor[in_channels, out_channels, kernel_size, kernel_size]: zeros except the filter.
    """
    in_channels = check_int(in_channels, "in_channels", 1)
    out_channels = check_int(out_channels, "out_channels", 1)
    k = check_int(kernel_size, "kernel_size", 1)
    if in_channels != out_channels and 1 not in (in_channels, out_channels):
        raise ArgumentError("in_channels and out_channels", "equal, or one of them 1", f"{in_channels} and {out_channels}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise ArgumentError("dtype", "a floating dtype", str(dtype))
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    tent = 1 - (torch.arange(k, dtype=dtype, device=device) - center).abs() / factor  # [k]
    filt = tent[:, None] * tent[None, :]  # [k, 1] * [1, k] -> [k, k]
    weight = torch.zeros(in_channels, out_channels, k, k, dtype=dtype, device=device)
    # Index lists of lengths (C, C), (C, 1) or (1, C) broadcast to the pairs the book fills.
    weight[torch.arange(in_channels), torch.arange(out_channels)] = filt
    return weight


def bilinear_upsample(image: Tensor, scale: int = 2) -> Tensor:
    """Enlarge an image ``scale`` times with a bilinear-initialised transposed convolution.

    The book's demonstration: ``nn.ConvTranspose2d(C, C, kernel_size=2*scale,
    padding=scale//2, stride=scale, bias=False)`` with its weight set to
    :func:`bilinear_kernel`. Each channel only feeds itself (the kernel is diagonal), so this
    runs it as a grouped convolution, which gives the same numbers with ``C`` times less work.

    For odd ``scale`` the book's recipe would give ``scale*H + 1`` rows, off-centre; there the
    kernel has ``2*scale - 1`` cells (centred on a cell), so the output is always
    ``scale*H x scale*W``. Away from the border the result is what
    ``F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False)`` gives;
    in the outer ``scale // 2`` rows and columns it interpolates towards zero, where
    ``interpolate`` repeats the edge pixel: exactly, it is ``interpolate`` of the image
    zero-padded by one pixel, cropped by ``scale``.

    Args:
        image (Tensor[N, C, H, W] or Tensor[C, H, W]): floating-point image(s).
        scale (int): >= 1.

    Returns:
        Tensor[N, C, scale*H, scale*W] (or Tensor[C, scale*H, scale*W]): in ``image``'s dtype.
    """
    if not isinstance(image, Tensor) or image.dim() not in (3, 4):
        raise ArgumentError("image", "a tensor of shape [N, C, H, W] or [C, H, W]", describe(image))
    if not image.is_floating_point():
        raise ArgumentError("image", "floating point (e.g. image.float() / 255)", str(image.dtype))
    if min(image.shape[-3:]) < 1:
        raise ArgumentError("image", "a tensor with C, H, W >= 1", describe(image))
    scale = check_int(scale, "scale", 1)
    batch = image if image.dim() == 4 else image[None]
    channels = batch.shape[1]
    k = 2 * scale - scale % 2
    weight = bilinear_kernel(1, 1, k, dtype=image.dtype, device=image.device).expand(channels, 1, k, k)
    out = F.conv_transpose2d(batch, weight, stride=scale, padding=scale // 2, groups=channels)
    return out if image.dim() == 4 else out[0]
