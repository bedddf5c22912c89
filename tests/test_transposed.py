"""vision_core.transposed: the book's examples, parity with torch's ConvTranspose2d, properties.

d2l 1.0.3 (the test oracle elsewhere) defines neither ``trans_conv`` nor ``bilinear_kernel``
(they live only in the book's notebooks), so the book's printed values and torch's own
``conv_transpose2d`` / ``ConvTranspose2d`` are the oracles here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from vision_core._checks import ArgumentError
from vision_core.transposed import (
    MAX_STEP_INPUT,
    bilinear_kernel,
    bilinear_upsample,
    dilate_and_pad,
    trans_conv,
    trans_conv2d,
    trans_conv_by_conv,
    trans_conv_output_size,
    trans_conv_steps,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETTINGS = settings(max_examples=25, deadline=None)
TIGHT = {"rtol": 1e-12, "atol": 1e-12}  # float64


def randn(*shape, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).to(device)


# --- the book's examples --------------------------------------------------------------------

def test_book_example_trans_conv():
    X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])
    assert torch.equal(trans_conv(X, K), expected)


def test_book_example_conv_transpose2d_and_padding():
    # The book then reruns the example through nn.ConvTranspose2d, and with padding=1 the
    # 3 x 3 result loses its outer ring, leaving [[4.]].
    X = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    K = X.clone()
    assert torch.equal(trans_conv2d(X, K), trans_conv(X[0, 0], K[0, 0])[None, None])
    assert torch.equal(trans_conv2d(X, K, padding=1), torch.tensor([[[[4.0]]]]))
    assert torch.equal(trans_conv_by_conv(X, K, padding=1), torch.tensor([[[[4.0]]]]))


def test_trans_conv_dtypes():
    ints = torch.tensor([[0, 1], [2, 3]])
    out = trans_conv(ints, ints)
    # Integers give the default float dtype, as the book's torch.zeros accumulator does.
    assert out.dtype == torch.get_default_dtype()
    assert out.tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    X, K = randn(3, 4, seed=1), randn(2, 3, seed=2)
    assert trans_conv(X, K).dtype == torch.float64
    torch.testing.assert_close(trans_conv(X, K), F.conv_transpose2d(X[None, None], K[None, None])[0, 0], **TIGHT)


def test_book_round_trip_shape():
    # d2l 14.10.3: a strided, padded Conv2d and the ConvTranspose2d with the same
    # hyperparameters map 16 x 16 to 6 x 6 and back.
    torch.manual_seed(0)
    X = torch.rand(size=(1, 10, 16, 16))
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    tconv = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3, bias=False)
    with torch.no_grad():
        Y = conv(X)
        assert Y.shape == (1, 20, 6, 6)
        expected = tconv(Y)
        ours = trans_conv2d(Y, tconv.weight, stride=3, padding=2)
        by_conv = trans_conv_by_conv(Y, tconv.weight, stride=3, padding=2)
    assert expected.shape == ours.shape == by_conv.shape == X.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(by_conv, expected, rtol=1e-5, atol=1e-5)
    assert trans_conv_output_size(6, 5, stride=3, padding=2) == 16


# --- parity with torch over a grid of hyperparameters ---------------------------------------

CHANNELS = [(1, 1), (3, 2), (2, 4)]
GRID = [(s, p, k) for s in (1, 2, 3) for p in (0, 1, 2) for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("stride,padding,k", GRID)
def test_grid_matches_torch_or_both_reject(stride, padding, k):
    # A 2 x 3 input with a k x (5 - k) kernel: small enough that some paddings leave no
    # output. Exactly the combinations torch rejects must raise ValueError here.
    c_in, c_out = CHANNELS[(stride + padding + k) % 3]
    X = randn(2, c_in, 2, 3, seed=k)
    K = randn(c_in, c_out, k, 5 - k, seed=10 + k)
    sizes = (trans_conv_output_size(2, k, stride, padding), trans_conv_output_size(3, 5 - k, stride, padding))
    if min(sizes) < 1:
        with pytest.raises(RuntimeError):
            F.conv_transpose2d(X, K, stride=stride, padding=padding)
        for fn in (trans_conv2d, trans_conv_by_conv):
            with pytest.raises(ArgumentError, match=r"padding must be <= .* for an output .* >= 1"):
                fn(X, K, stride, padding)
        return
    expected = F.conv_transpose2d(X, K, stride=stride, padding=padding)
    assert expected.shape == (2, c_out, *sizes)
    torch.testing.assert_close(trans_conv2d(X, K, stride, padding), expected, **TIGHT)
    torch.testing.assert_close(trans_conv_by_conv(X, K, stride, padding), expected, **TIGHT)


def test_padding_at_least_kernel_size_is_valid_when_torch_accepts_it():
    # torch only asks for an output of at least one cell; padding >= k is allowed.
    X, K = randn(1, 2, 4, 4, seed=3), randn(2, 3, 2, 1, seed=4)
    for stride, padding in [(3, 2), (3, (2, 1)), (1, (1, 1))]:
        expected = F.conv_transpose2d(X, K, stride=stride, padding=padding)
        torch.testing.assert_close(trans_conv2d(X, K, stride, padding), expected, **TIGHT)
        torch.testing.assert_close(trans_conv_by_conv(X, K, stride, padding), expected, **TIGHT)


@st.composite
def conv_cases(draw):
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    assume(trans_conv_output_size(h, kh, stride[0], padding[0]) >= 1)
    assume(trans_conv_output_size(w, kw, stride[1], padding[1]) >= 1)
    seed = draw(st.integers(0, 2**16))
    return randn(n, c_in, h, w, seed=seed), randn(c_in, c_out, kh, kw, seed=seed + 1), stride, padding


@SETTINGS
@given(conv_cases())
def test_property_matches_conv_transpose2d(case):
    X, K, stride, padding = case
    expected = F.conv_transpose2d(X, K, stride=stride, padding=padding)
    ours = trans_conv2d(X, K, stride, padding)
    sizes = [trans_conv_output_size(X.shape[2 + d], K.shape[2 + d], stride[d], padding[d]) for d in (0, 1)]
    assert ours.shape == (X.shape[0], K.shape[1], *sizes)
    torch.testing.assert_close(ours, expected, **TIGHT)
    torch.testing.assert_close(trans_conv_by_conv(X, K, stride, padding), expected, **TIGHT)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype_follow_input(device, dtype):
    X, K = randn(2, 3, 4, 5, dtype=dtype, device=device), randn(3, 2, 3, 2, dtype=dtype, device=device)
    expected = F.conv_transpose2d(X, K, stride=2, padding=1)
    for fn in (trans_conv2d, trans_conv_by_conv):
        out = fn(X, K, 2, 1)
        assert out.device == X.device and out.dtype == dtype
        torch.testing.assert_close(out, expected)


def test_gradients_match_conv_transpose2d():
    X, K = randn(1, 2, 3, 4, seed=5).requires_grad_(), randn(2, 3, 3, 3, seed=6).requires_grad_()
    upstream = randn(1, 3, 5, 7, seed=7)
    expected = torch.autograd.grad((F.conv_transpose2d(X, K, stride=2, padding=1) * upstream).sum(), (X, K))
    for fn in (trans_conv2d, trans_conv_by_conv):
        grads = torch.autograd.grad((fn(X, K, 2, 1) * upstream).sum(), (X, K))
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, **TIGHT)


def test_output_size_formula():
    assert trans_conv_output_size(2, 2) == 3  # the book's 2 x 2 example
    assert trans_conv_output_size(6, 5, 3, 2) == 16
    assert trans_conv_output_size(4, 2, stride=2) == 8  # k == s doubles the size
    # Returned as computed, even when no output exists.
    assert trans_conv_output_size(2, 1, 1, 1) == 0
    assert trans_conv_output_size(1, 1, 1, 2) == -3


@pytest.mark.parametrize("n, k, s, p", [(2, 2, 1, 0), (2, 2, 2, 1), (3, 4, 2, 1), (5, 3, 3, 0), (4, 64, 32, 16)])
def test_output_size_is_the_copies_span_and_the_zero_insertion_size(n, k, s, p):
    # (n - 1) s - 2p + k: the span of n kernel copies s apart, cropped by p at each end ...
    size = trans_conv_output_size(n, k, s, p)
    assert size == (n - 1) * s - 2 * p + k
    assert trans_conv2d(torch.ones(1, 1, n, n), torch.ones(1, 1, k, k), s, p).shape[-1] == size
    # ... and what a stride-1 convolution with k leaves of X with s - 1 zeros between cells and
    # k - 1 - p on each side (z cells), the construction the Segmentation tab typesets.
    z = (n - 1) * s + 1 + 2 * (k - 1 - p)
    assert dilate_and_pad(torch.ones(n, n), s, k - 1 - p).shape == (z, z) and z - k + 1 == size


# --- the construction by convolution --------------------------------------------------------

def test_dilate_and_pad_layout():
    X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    Z = dilate_and_pad(X, 2, 1)
    expected = torch.tensor(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 0, 2, 0],
            [0, 0, 0, 0, 0],
            [0, 3, 0, 4, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=X.dtype,
    )
    assert torch.equal(Z, expected)
    # Per-dimension stride and pad; a negative pad crops.
    Z = dilate_and_pad(X[None, None], (1, 3), (0, -1))
    assert Z.shape == (1, 1, 2, 2)
    assert torch.equal(Z[0, 0], torch.tensor([[0.0, 0.0], [0.0, 0.0]]))
    assert torch.equal(dilate_and_pad(X, (1, 3), (1, -1)), torch.zeros(4, 2))
    assert dilate_and_pad(randn(2, 3, 4, 5), (2, 3), (2, 1)).shape == (2, 3, 2 * 3 + 1 + 4, 3 * 4 + 1 + 2)


# --- step-through ---------------------------------------------------------------------------

@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 3), (0, 2))])
def test_steps_replay_the_scatter(stride, padding):
    X, K = randn(3, 4, seed=8), randn(2, 3, seed=9)
    steps = list(trans_conv_steps(X, K, stride, padding))
    assert len(steps) == X.numel() == steps[0].total
    assert [(s.row, s.col) for s in steps] == [(i, j) for i in range(3) for j in range(4)]
    grid_shape = steps[0].contribution.shape
    total = torch.zeros(grid_shape, dtype=X.dtype)
    for s in steps:
        top, left, bottom, right = s.window
        assert 0 <= top < bottom <= grid_shape[0] and 0 <= left < right <= grid_shape[1]
        assert (bottom - top, right - left) == K.shape
        assert s.value == X[s.row, s.col].item()
        torch.testing.assert_close(s.contribution[top:bottom, left:right], s.value * K, **TIGHT)
        outside = s.contribution.clone()
        outside[top:bottom, left:right] = 0
        assert not outside.any()
        total += s.contribution
    expected = trans_conv2d(X[None, None], K[None, None], stride, padding)[0, 0]
    assert steps[-1].running.shape == expected.shape
    torch.testing.assert_close(steps[-1].running, expected, **TIGHT)
    torch.testing.assert_close(total, trans_conv2d(X[None, None], K[None, None], stride)[0, 0], **TIGHT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps[0].row = 1


def test_steps_running_sum_is_a_snapshot():
    steps = list(trans_conv_steps(torch.ones(2, 2), torch.ones(2, 2)))
    assert [s.running.sum().item() for s in steps] == [4.0, 8.0, 12.0, 16.0]
    assert torch.equal(steps[-1].running, torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]))


def test_steps_are_capped_and_checked_eagerly():
    big = torch.zeros(MAX_STEP_INPUT + 1, 2)
    with pytest.raises(ValueError, match=r"at most 8 x 8"):
        trans_conv_steps(big, torch.ones(2, 2))  # raised at the call, not at the first next()
    with pytest.raises(ValueError, match=r"X must be a tensor of shape \[h, w\]"):
        trans_conv_steps(torch.zeros(1, 2, 2), torch.ones(2, 2))


# --- bilinear kernel and upsampling ---------------------------------------------------------

def test_bilinear_kernel_hand_computed():
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25])  # factor 2, center 1.5
    W = bilinear_kernel(3, 3, 4)
    assert W.shape == (3, 3, 4, 4) and W.dtype == torch.get_default_dtype()
    for i in range(3):
        for o in range(3):
            expected = torch.outer(tent, tent) if i == o else torch.zeros(4, 4)
            assert torch.equal(W[i, o], expected)
    assert W[0, 0, 1, 1] == 9 / 16 and W[0, 0, 0, 0] == 1 / 16
    assert torch.equal(bilinear_kernel(1, 1, 3)[0, 0], torch.outer(*[torch.tensor([0.5, 1.0, 0.5])] * 2))
    assert torch.equal(bilinear_kernel(1, 1, 1), torch.ones(1, 1, 1, 1))


@pytest.mark.parametrize("k", [2, 4, 6, 16, 64])
def test_bilinear_kernel_even_sizes_sum_to_stride_squared(k):
    # With stride k/2 every interior output cell gets total weight 1, so the filter sums
    # to (k/2)**2 and is symmetric, with its maximum at the four centre cells.
    filt = bilinear_kernel(2, 2, k, dtype=torch.float64)[1, 1]
    assert filt.sum().item() == pytest.approx((k // 2) ** 2)
    assert torch.equal(filt, filt.T) and torch.equal(filt, filt.flip(0, 1))
    assert filt.max() == filt[k // 2 - 1 : k // 2 + 1, k // 2 - 1 : k // 2 + 1].min()


def test_bilinear_kernel_channel_pairs_like_the_book():
    # The book's weight[range(in), range(out)] broadcasts a length-1 range.
    assert (bilinear_kernel(3, 1, 4).sum(dim=(2, 3)) == 4).all()
    assert (bilinear_kernel(1, 3, 4).sum(dim=(2, 3)) == 4).all()
    assert bilinear_kernel(21, 21, 64).sum(dim=(2, 3)).count_nonzero() == 21


def test_bilinear_upsample_book_photo():
    # d2l 14.11.2: the 2x upsampled photo has twice the height and width.
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float() / 255  # [3, 300, 451]
    out = bilinear_upsample(img[None], 2)
    assert img.shape == (3, 300, 451) and out.shape == (1, 3, 600, 902)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("scale", [2, 4])
def test_bilinear_upsample_is_the_books_layer(scale):
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(scale))
    layer = nn.ConvTranspose2d(3, 3, kernel_size=2 * scale, padding=scale // 2, stride=scale, bias=False)
    layer.weight.data.copy_(bilinear_kernel(3, 3, 2 * scale))
    with torch.no_grad():
        expected = layer(x)
    torch.testing.assert_close(bilinear_upsample(x, scale), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5])
def test_bilinear_upsample_vs_interpolate(scale):
    x = 0.5 + torch.rand(1, 3, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(scale))
    out = bilinear_upsample(x, scale)
    assert out.shape == (1, 3, 6 * scale, 7 * scale)
    ref = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    # Interior: the same bilinear interpolation (half-pixel centres, align_corners=False).
    b = scale // 2
    inner = (slice(None), slice(None), slice(b, out.shape[2] - b), slice(b, out.shape[3] - b))
    torch.testing.assert_close(out[inner], ref[inner], **TIGHT)
    # Border: interpolate repeats the edge pixel, the transposed convolution fades to zero,
    # so on a positive image every one of the outer scale // 2 rows is darker.
    if b:
        for rows in (out[:, :, :b] - ref[:, :, :b], out[:, :, -b:] - ref[:, :, -b:]):
            assert (rows < -1e-3).all()
    # Exactly: interpolate of the image zero-padded by one pixel, cropped by scale.
    zero_padded = F.interpolate(F.pad(x, (1, 1, 1, 1)), scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, zero_padded[..., scale:-scale, scale:-scale], **TIGHT)


def test_bilinear_upsample_shapes_and_constant_interior():
    img = torch.full((1, 5, 4), 0.3)  # unbatched, any channel count
    out = bilinear_upsample(img, 2)
    assert out.shape == (1, 10, 8)
    torch.testing.assert_close(out[:, 1:-1, 1:-1], torch.full((1, 8, 6), 0.3))
    assert bilinear_upsample(torch.rand(1, 1, 2, 3), 32).shape == (1, 1, 64, 96)  # FCN's factor


# --- bad input ------------------------------------------------------------------------------

X4, K4 = torch.zeros(1, 2, 3, 3), torch.zeros(2, 1, 2, 2)

BAD_CALLS = [
    (lambda: trans_conv2d(torch.zeros(2, 3, 3), K4), r"X must be a tensor of shape \[N, C_in, H, W\], got \(2, 3, 3\)"),
    (lambda: trans_conv2d(X4, torch.zeros(2, 2, 2)), r"K must be a tensor of shape \[C_in, C_out, kh, kw\]"),
    (lambda: trans_conv2d(X4, torch.zeros(3, 1, 2, 2)), r"X must be a Tensor\[N, C_in, H, W\] with C_in = 3, as K .* expects, got C_in = 2"),
    (lambda: trans_conv2d(X4.long(), K4), r"X must be floating point, got torch.int64"),
    (lambda: trans_conv2d(X4, K4.int()), r"K must be floating point, got torch.int32"),
    (lambda: trans_conv2d(X4, K4, stride=0), r"stride must be an integer >= 1, got 0"),
    (lambda: trans_conv2d(X4, K4, stride=(1, 0)), r"stride\[1\] must be an integer >= 1, got 0"),
    (lambda: trans_conv2d(X4, K4, stride=1.5), r"stride must be an integer >= 1, got 1.5"),
    (lambda: trans_conv2d(X4, K4, stride=(1, 2, 3)), r"stride must be an integer or a pair"),
    (lambda: trans_conv2d(X4, K4, padding=-1), r"padding must be an integer >= 0, got -1"),
    (lambda: trans_conv2d(X4, K4, padding=3), r"the height padding must be <= 1 here, .* got 3: .* = -2"),
    (lambda: trans_conv_by_conv(X4, K4, padding=(0, 3)), r"the width padding must be <= 1 here"),
    (lambda: trans_conv2d(torch.zeros(1, 2, 0, 3), K4), r"X must be a tensor of shape .* with height and width >= 1"),
    (lambda: trans_conv(torch.zeros(2, 2, 1), torch.zeros(2, 2)), r"X must be a non-empty tensor of shape \[h, w\]"),
    (lambda: trans_conv([[0.0]], torch.zeros(2, 2)), r"X must be a non-empty tensor of shape \[h, w\], got list"),
    (lambda: trans_conv_output_size(0, 2), r"n must be an integer >= 1, got 0"),
    (lambda: trans_conv_output_size(2, 2, padding=-1), r"padding must be an integer >= 0"),
    (lambda: dilate_and_pad(torch.zeros(3), 1, 0), r"X must be a tensor of shape \[..., H, W\]"),
    (lambda: dilate_and_pad(torch.zeros(2, 2), 1, -1), r"the height pad must be >= 0, got -1, which crops the whole height"),
    (lambda: trans_conv_steps(torch.zeros(2, 2), torch.zeros(2, 2), padding=2), r"padding must be <= "),
    (lambda: bilinear_kernel(3, 2, 4), r"in_channels and out_channels must be equal, or one of them 1, got 3 and 2"),
    (lambda: bilinear_kernel(3, 3, 0), r"kernel_size must be an integer >= 1, got 0"),
    (lambda: bilinear_kernel(0, 1, 2), r"in_channels must be an integer >= 1"),
    (lambda: bilinear_kernel(1, 1, 2, dtype=torch.int64), r"dtype must be a floating dtype"),
    (lambda: bilinear_upsample(torch.zeros(3, 4, 4, dtype=torch.uint8)), r"image must be floating point"),
    (lambda: bilinear_upsample(torch.zeros(4, 4)), r"image must be a tensor of shape \[N, C, H, W\] or \[C, H, W\]"),
    (lambda: bilinear_upsample(torch.zeros(3, 4, 4), scale=0), r"scale must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("call,message", BAD_CALLS, ids=range(len(BAD_CALLS)))
def test_bad_input_raises_clear_argument_error(call, message):
    with pytest.raises(ArgumentError, match=message):
        call()
