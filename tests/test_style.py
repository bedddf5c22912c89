"""Neural style transfer (d2l 14.12): the book's losses, pictures in and out, the streamed loop.

The networks it reads (taps, VGG-19, EfficientNet-Lite0) are tested in test_style_networks.py.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from vision_core import _runtime
from vision_core.models.style_networks import FeatureTaps
from vision_core.progress import Progress
from vision_core.style import (
    RGB_MEAN,
    RGB_STD,
    _balanced_layer_weights,
    _Run,
    compute_loss,
    content_loss,
    gram,
    postprocess,
    preprocess,
    style_loss,
    high_frequency_energy,
    smooth,
    style_transfer,
    tv_loss,
)

SHAPE = (32, 48)


def _photo(seed, h=40, w=60):
    # A smooth picture plus noise: uint8 [H, W, 3].
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _smooth(h=40, w=60):
    # The content: colour ramps, uint8 [H, W, 3].
    yy, xx = np.mgrid[0:h, 0:w]
    return (np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 200 + 20).astype(np.uint8)


def _stripes(h=40, w=60):
    # The style: saturated diagonal stripes, uint8 [H, W, 3].
    yy, xx = np.mgrid[0:h, 0:w]
    a = ((xx + yy) // 4) % 2
    return np.stack([a * 230 + 10, (1 - a) * 200 + 20, np.full_like(a, 60)], axis=-1).astype(np.uint8)


def _tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1))


def _taps(net=None):
    return FeatureTaps(net if net is not None else _tiny_net(), content_layers=[3], style_layers=[0, 2])


def _run(**kwargs):
    args = {"steps": 30, "lr": 0.1, "image_shape": SHAPE, "device": "cpu", "frame_interval": 0.0}
    args.update(kwargs)
    taps = args.pop("taps", None) or _taps()
    return list(style_transfer(_smooth(), _stripes(), taps, **args))


# --- the book's losses ----------------------------------------------------------------------

def test_gram_of_a_known_tensor():
    X = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # channel 0: (1, 2); channel 1: (3, 4)
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 2)
    assert torch.allclose(gram(X), expected)
    Y = torch.randn(1, 5, 3, 4)
    F = Y.reshape(5, 12)
    assert gram(Y).shape == (5, 5)
    assert torch.allclose(gram(Y), F @ F.T / 60, atol=1e-6)


def test_content_and_style_loss_are_the_books_mse_with_constant_targets():
    Y_hat = torch.tensor([[[[1.0, 2.0]]]], requires_grad=True)
    Y = torch.tensor([[[[0.0, 4.0]]]], requires_grad=True)
    loss = content_loss(Y_hat, Y)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert Y.grad is None and torch.allclose(Y_hat.grad, torch.tensor([[[[1.0, -2.0]]]]))

    Z = torch.randn(1, 3, 2, 2, requires_grad=True)
    gram_Y = torch.eye(3, requires_grad=True)
    sl = style_loss(Z, gram_Y)
    assert sl.item() == pytest.approx(((gram(Z) - torch.eye(3)) ** 2).mean().item(), rel=1e-6)
    sl.backward()
    assert gram_Y.grad is None and Z.grad is not None


def test_tv_loss_of_a_ramp():
    # Rows step by 1, columns by 3: 0.5 * (1 + 3) = 2.
    X = (torch.arange(4.0)[:, None] + 3 * torch.arange(5.0)[None, :]).expand(1, 3, 4, 5)
    assert tv_loss(X).item() == pytest.approx(2.0)
    assert tv_loss(torch.ones(1, 3, 6, 6)).item() == 0


def test_smooth_is_the_binomial_blur():
    X = torch.zeros(1, 3, 9, 9)
    X[0, :, 4, 4] = 16.0
    twice = smooth(X, 2)
    row = torch.tensor([1.0, 4, 6, 4, 1])  # [1, 2, 1] twice: the binomial of order 4
    torch.testing.assert_close(twice[0, 1, 2:7, 2:7], row[:, None] * row[None, :] / 16)
    assert twice.sum() == pytest.approx(X.sum())  # nothing reached the edges: no mass lost
    ones = torch.ones(1, 2, 5, 7)
    torch.testing.assert_close(smooth(ones, 3), ones)  # edges repeat: a flat image stays flat
    assert smooth(X, 0) is X


def test_smoothing_the_gradient_keeps_the_changes_smooth():
    plain, smoothed = _run(steps=10)[-1].preview, _run(steps=10, smooth_gradient=2)[-1].preview
    content = postprocess(preprocess(_smooth(), SHAPE))  # where both runs start
    change = lambda image: torch.from_numpy(image.astype(np.float32) - content.astype(np.float32)).permute(2, 0, 1)
    assert high_frequency_energy(change(smoothed)) < 0.5 * high_frequency_energy(change(plain))


def test_compute_loss_weights_and_sum():
    X = torch.rand(1, 3, 8, 8)
    c_hat, c = [torch.ones(1, 2, 4, 4)], [torch.zeros(1, 2, 4, 4)]
    s_hat = [torch.ones(1, 2, 4, 4), torch.ones(1, 4, 2, 2)]
    s_gram = [torch.zeros(2, 2), torch.zeros(4, 4)]
    contents_l, styles_l, tv_l, total = compute_loss(X, c_hat, s_hat, c, s_gram, content_weight=2.0,
                                                     style_weight=10.0, tv_weight=3.0,
                                                     style_layer_weights=[1.0, 0.5])
    assert contents_l[0].item() == pytest.approx(2.0)
    assert styles_l[0].item() == pytest.approx(10.0 * gram(s_hat[0]).square().mean().item())
    assert styles_l[1].item() == pytest.approx(5.0 * gram(s_hat[1]).square().mean().item())
    assert tv_l.item() == pytest.approx(3.0 * tv_loss(X).item())
    assert total.item() == pytest.approx(sum(v.item() for v in contents_l + styles_l + [tv_l]), rel=1e-6)
    with pytest.raises(ValueError, match="style_layer_weights"):
        compute_loss(X, c_hat, s_hat, c, s_gram, style_layer_weights=[1.0])


# --- pictures -------------------------------------------------------------------------------

def test_preprocess_postprocess_round_trip_and_inputs():
    photo = _photo(3)
    X = preprocess(photo, photo.shape[:2])
    assert X.shape == (1, 3, 40, 60) and X.dtype == torch.float32
    expected = (torch.from_numpy(photo).permute(2, 0, 1).float() / 255 - RGB_MEAN[:, None, None]) / RGB_STD[:, None, None]
    assert torch.allclose(X[0], expected, atol=1e-5)
    back = postprocess(X)
    assert back.dtype == np.uint8 and back.shape == photo.shape
    assert np.abs(back.astype(int) - photo.astype(int)).max() <= 1
    # Same picture as a tensor and as a PIL image; resized to the requested shape.
    assert torch.equal(preprocess(torch.from_numpy(photo).permute(2, 0, 1), (40, 60)), X)
    from PIL import Image
    assert torch.equal(preprocess(Image.fromarray(photo), (40, 60)), X)
    assert preprocess(photo, (16, 24)).shape == (1, 3, 16, 24)
    # Clamped.
    assert postprocess(torch.full((1, 3, 2, 2), 100.0)).min() == 255
    assert postprocess(torch.full((1, 3, 2, 2), -100.0)).max() == 0


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 torch.zeros(3, 4, 4), torch.zeros(4, 4, 3, dtype=torch.uint8), "cat.png"])
def test_preprocess_rejects_bad_images(bad):
    with pytest.raises(ValueError, match="img must be"):
        preprocess(bad, (16, 16))


def test_preprocess_rejects_bad_shapes():
    for shape in [(8, 32), (32, 4096), (32,), "32x32", (32.0, 32)]:
        with pytest.raises(ValueError, match=r"image_shape"):
            preprocess(_photo(0), shape)


# --- the streamed optimisation --------------------------------------------------------------

def test_style_transfer_lowers_the_style_loss_and_repeats():
    records = _run()
    assert all(isinstance(r, Progress) for r in records)
    assert [r.step for r in records] == list(range(1, 31)) and records[-1].done
    assert not any(r.done for r in records[:-1])
    first, final = records[0].metrics, records[-1].metrics
    assert set(first) == {"content", "style", "tv", "total", "lr"}
    assert final["style"] <= 0.5 * first["style"]
    assert final["total"] < first["total"]
    image = records[-1].preview
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (*SHAPE, 3)
    assert records[0].metrics["content"] == 0  # starts as the content image
    assert np.array_equal(_run()[-1].preview, image)  # deterministic on the CPU


def test_style_transfer_lr_decays_and_previews_are_throttled(slow_clock):
    records = _run(steps=12, lr_decay_epoch=5, frame_interval=3600.0)
    assert records[0].metrics["lr"] == pytest.approx(0.1) and records[5].metrics["lr"] == pytest.approx(0.08)
    assert records[-1].metrics["lr"] == pytest.approx(0.064)
    with_preview = [r.step for r in records if r.preview is not None]
    assert with_preview == [1, 12]


def test_style_transfer_stops_within_one_step():
    stop = threading.Event()
    records = []
    for record in style_transfer(_photo(1), _photo(2), _taps(), steps=100, image_shape=SHAPE, device="cpu",
                                 stop=stop):
        records.append(record)
        if record.step == 3:
            stop.set()
    assert [r.step for r in records] == [1, 2, 3, 3]
    assert records[-1].done and "stopped" in records[-1].message
    assert records[-1].preview.shape == (*SHAPE, 3)


# --- cuDNN autotuning: on for a CUDA run only, the process's setting back after it ----------------

@pytest.mark.parametrize("before", [False, True])
def test_cudnn_autotune_puts_the_flag_back_however_the_block_ends(monkeypatch, before):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", before)  # and back after the test
    with _runtime.cudnn_autotune(True):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is before
    with pytest.raises(RuntimeError), _runtime.cudnn_autotune(True):
        raise RuntimeError("out of memory")
    assert torch.backends.cudnn.benchmark is before
    with _runtime.cudnn_autotune(False):  # off: the flag is left alone
        assert torch.backends.cudnn.benchmark is before


def _runs_ending_every_way():
    """(how, run): a run driven to its end, closed after its first record, stopped, and one that fails."""
    def finished():
        return list(style_transfer(_photo(1), _photo(2), _taps(), steps=3, image_shape=SHAPE, device="cpu"))

    def closed():
        records = style_transfer(_photo(1), _photo(2), _taps(), steps=50, image_shape=SHAPE, device="cpu")
        next(records)
        records.close()  # what a page does when its session goes away mid-run

    def stopped():
        stop = threading.Event()
        for record in style_transfer(_photo(1), _photo(2), _taps(), steps=50, image_shape=SHAPE, device="cpu",
                                     stop=stop):
            stop.set()
        assert "stopped" in record.message

    def failed():
        with pytest.raises(RuntimeError, match="out of memory"):
            list(style_transfer(_photo(1), _photo(2), FeatureTaps(nn.Sequential(_Boom()), [0], [0]), steps=3,
                                image_shape=SHAPE, device="cpu"))

    return [("finished", finished), ("closed", closed), ("stopped", stopped), ("failed", failed)]


class _Boom(nn.Module):
    def forward(self, X):
        raise RuntimeError("out of memory")


def _flag_at_every_step(monkeypatch) -> list[bool]:
    """``torch.backends.cudnn.benchmark`` as every step of every run from now on sees it."""
    seen, step = [], _Run.step

    def recording(run, k):
        seen.append(torch.backends.cudnn.benchmark)
        return step(run, k)

    monkeypatch.setattr(_Run, "step", recording)
    return seen


def test_a_cuda_run_sets_cudnn_benchmark_for_itself_and_puts_it_back(monkeypatch):
    # cd4bc99 set torch.backends.cudnn.benchmark = True for the rest of the process on a CUDA run.
    # The CUDA decision is patched so the CPU takes the same path (raising=False: the old code has
    # no such function, and then the flag is never set during the run, which fails below too).
    from vision_core import style

    monkeypatch.setattr(style, "_autotunes", lambda device: True, raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    seen = _flag_at_every_step(monkeypatch)
    for how, run in _runs_ending_every_way():
        seen.clear()
        run()
        assert how == "failed" or (seen and all(seen)), f"{how}: autotuning was off during the run"
        assert torch.backends.cudnn.benchmark is False, f"{how}: the run left cudnn.benchmark on"


@pytest.mark.parametrize("before", [False, True])
def test_a_cpu_run_leaves_cudnn_benchmark_as_it_was(monkeypatch, before):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", before)
    seen = _flag_at_every_step(monkeypatch)
    for how, run in _runs_ending_every_way():
        run()
        assert torch.backends.cudnn.benchmark is before, how
    assert seen and all(flag is before for flag in seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_real_cuda_run_puts_cudnn_benchmark_back(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    records = style_transfer(_photo(1), _photo(2), _taps(), steps=3, image_shape=SHAPE, device="cuda")
    next(records)
    assert torch.backends.cudnn.benchmark is True
    records.close()
    assert torch.backends.cudnn.benchmark is False
    list(style_transfer(_photo(1), _photo(2), _taps(), steps=3, image_shape=SHAPE, device="cuda"))
    assert torch.backends.cudnn.benchmark is False


class _NaNAfter(nn.Module):
    """Identity for the first ``calls`` forward passes, NaN after."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def forward(self, X):
        self.calls -= 1
        return X if self.calls >= 0 else X * float("nan")


def test_style_transfer_reports_a_nan_loss_and_keeps_the_last_good_image():
    net = _tiny_net()
    layers = list(net)
    # Two passes compute the targets; steps 1..5 are fine, step 6 is NaN.
    taps = FeatureTaps(nn.Sequential(layers[0], _NaNAfter(2 + 5), *layers[1:]), content_layers=[4],
                       style_layers=[0, 3])
    records = _run(taps=taps, steps=20)
    final = records[-1]
    assert final.done and "NaN" in final.message and "step 6" in final.message
    assert final.step == 5 and all(math.isfinite(v) for v in final.metrics.values())
    assert final.preview.shape == (*SHAPE, 3) and final.preview.dtype == np.uint8
    assert [r.step for r in records] == [1, 2, 3, 4, 5, 5]


def test_style_transfer_nan_at_the_first_step_keeps_the_content_image():
    net = _tiny_net()
    taps = FeatureTaps(nn.Sequential(net[0], _NaNAfter(2), *list(net)[1:]), content_layers=[4], style_layers=[0, 3])
    records = _run(taps=taps, steps=5)
    assert len(records) == 1 and records[0].done and records[0].step == 0 and dict(records[0].metrics) == {}
    assert "step 1" in records[0].message
    assert np.abs(records[0].preview.astype(int)
                  - np.asarray(_resized_content(), dtype=int)).max() <= 1


def _resized_content():
    return postprocess(preprocess(_smooth(), SHAPE))


def test_accelerator_policy_reads_only_at_previews(monkeypatch, slow_clock):
    # The accelerator path (no host read between previews), exercised on the CPU.
    from vision_core import style

    sync_free = style._sync_free
    monkeypatch.setattr(style, "_sync_free", lambda device: True)
    records = _run(steps=8, frame_interval=3600.0)
    assert [r.step for r in records] == [1, 8] and all(r.preview is not None for r in records)
    monkeypatch.setattr(style, "_sync_free", sync_free)
    assert np.array_equal(records[-1].preview, _run(steps=8)[-1].preview)

    monkeypatch.setattr(style, "_sync_free", lambda device: True)
    net = _tiny_net()
    taps = FeatureTaps(nn.Sequential(net[0], _NaNAfter(2 + 5), *list(net)[1:]), content_layers=[4],
                       style_layers=[0, 3])
    records = _run(taps=taps, steps=20, frame_interval=3600.0)
    # NaN at step 6 is noticed at the last step (20), the image and metrics are step 5's.
    assert [r.step for r in records] == [1, 5] and records[-1].done
    assert "step 20" in records[-1].message and "image of step 5" in records[-1].message
    assert all(math.isfinite(v) for v in records[-1].metrics.values())


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, r"steps must be an integer in \[1, 10000\]"),
    ({"steps": 10001}, "steps"),
    ({"lr": 0}, r"lr must be a number in \(0.0, 10.0\], got 0"),
    ({"lr": float("nan")}, "lr"),
    ({"style_weight": 0}, "style_weight"),
    ({"content_weight": -1}, "content_weight"),
    ({"tv_weight": float("inf")}, "tv_weight"),
    ({"image_shape": (8, 48)}, r"image_shape\[0\] \(height\) must be an integer in \[16, 2048\]"),
    ({"image_shape": (32, 4096)}, "image_shape"),
    ({"style_layer_weights": [1.0]}, "style_layer_weights"),
    ({"style_layer_weights": [1.0, -2.0]}, r"style_layer_weights\[1\]"),
    ({"lr_decay_epoch": 0}, "lr_decay_epoch"),
    ({"frame_interval": -1}, "frame_interval"),
    ({"device": "tpu"}, "device"),
    ({"smooth_gradient": 17}, r"smooth_gradient must be an integer in \[0, 16\]"),
    ({"smooth_gradient": 1.5}, "smooth_gradient"),
])
def test_style_transfer_rejects_bad_arguments_when_called(kwargs, match):
    args = {"image_shape": SHAPE, "device": "cpu"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        style_transfer(_photo(1), _photo(2), _taps(), **args)  # raised before any record is asked for


def test_style_transfer_rejects_bad_images_and_taps():
    with pytest.raises(ValueError, match="content must be"):
        style_transfer(np.zeros((4, 4), np.uint8), _photo(2), _taps(), device="cpu")
    with pytest.raises(ValueError, match="style must be"):
        style_transfer(_photo(1), torch.zeros(3, 4, 4), _taps(), device="cpu")
    with pytest.raises(ValueError, match="taps must be a FeatureTaps"):
        style_transfer(_photo(1), _photo(2), _tiny_net(), device="cpu")


def test_style_transfer_series_has_every_steps_losses():
    records = _run(steps=9, frame_interval=3600.0)
    series = {k: [v for r in records for v in r.series[k]] for k in ("content", "style", "tv", "total")}
    assert all(len(v) == 9 for v in series.values())
    for r in records:  # on the CPU one record per step: its series is that step's metrics
        assert r.series["style"] == (r.metrics["style"],) and r.series["total"] == (r.metrics["total"],)


def test_accelerator_policy_sends_every_steps_losses_with_the_previews(monkeypatch, slow_clock):
    from vision_core import style

    eager = _run(steps=8)
    monkeypatch.setattr(style, "_sync_free", lambda device: True)
    records = _run(steps=8, frame_interval=3600.0)
    assert [r.step for r in records] == [1, 8]
    assert [len(r.series["style"]) for r in records] == [1, 7]
    got = [v for r in records for v in r.series["style"]]
    assert got == pytest.approx([r.metrics["style"] for r in eager], rel=1e-12)


def test_warm_up_and_reset_replays_the_same_run():
    # What the CUDA-graph path does around its capture, checked on the CPU: a few warm-up
    # steps, then a reset, must leave no trace (image, Adam's moments and step, bookkeeping).
    def loss_fn(taps, content_X, style_X):
        with torch.no_grad():
            contents_Y = taps(content_X)[0]
            grams = [gram(Y) for Y in taps(style_X)[1]]
        return lambda X: compute_loss(X, *taps(X), contents_Y, grams)

    taps = _taps()
    content_X, style_X = preprocess(_smooth(), SHAPE), preprocess(_stripes(), SHAPE)
    plain = _Run(content_X, loss_fn(taps, content_X, style_X), steps=6, lr=0.1, lr_decay_epoch=2)
    for step in range(1, 7):
        plain.step(step)
    warmed = _Run(content_X, loss_fn(taps, content_X, style_X), steps=6, lr=0.1, lr_decay_epoch=2)
    for _ in range(_Run.WARMUP):
        warmed._body()
    warmed._reset()
    for step in range(1, 7):
        warmed.step(step)
    assert torch.equal(warmed.X, plain.X)
    assert warmed.read() == plain.read() and warmed.series(0, 6) == plain.series(0, 6)


def test_balanced_layer_weights_even_out_the_starting_losses():
    torch.manual_seed(0)
    styles = [torch.randn(1, 4, 6, 6) * s for s in (1.0, 10.0, 0.1)]
    targets = [gram(torch.randn(1, 4, 6, 6)) for _ in styles]
    factors = _balanced_layer_weights(styles, targets, [1.0, 2.0, 1.0])
    raw = torch.stack([style_loss(Y, G) for Y, G in zip(styles, targets)])
    weighted = torch.stack([r * f for r, f in zip(raw, factors)])
    assert weighted[0] == pytest.approx(float(raw.mean()), rel=1e-5)
    assert weighted[2] == pytest.approx(float(raw.mean()), rel=1e-5)
    assert weighted[1] == pytest.approx(2 * float(raw.mean()), rel=1e-5)  # the user's factor on top
    same = _balanced_layer_weights([styles[0]], [gram(styles[0])], None)  # a zero loss keeps factor 1
    assert float(same[0]) == 1.0


def test_balance_style_layers_changes_the_run_and_is_validated():
    plain, balanced = _run(steps=3), _run(steps=3, balance_style_layers=True)
    assert balanced[0].metrics["style"] == pytest.approx(plain[0].metrics["style"], rel=1e-5)  # sum kept
    assert not np.array_equal(plain[-1].preview, balanced[-1].preview)
    with pytest.raises(ValueError, match="balance_style_layers"):
        style_transfer(_photo(1), _photo(2), _taps(), device="cpu", balance_style_layers="yes")
    with pytest.raises(ValueError, match="cuda_graph"):
        style_transfer(_photo(1), _photo(2), _taps(), device="cpu", cuda_graph=1)


def test_ours_equals_the_books_loop():
    # The book's train (network not frozen, features re-read each step) and ours (frozen, Grams
    # once) take the same Adam steps on the image: the frozen weights only skip unused gradients.
    from benchmarks.style import book_style_transfer

    net = _tiny_net()
    book = book_style_transfer(_smooth(), _stripes(), net, steps=12, image_shape=SHAPE, device=torch.device("cpu"),
                               lr=0.1, lr_decay_epoch=5, content_layers=(3,), style_layers=(0, 2))
    ours = _run(steps=12, lr=0.1, lr_decay_epoch=5, taps=FeatureTaps(_tiny_net(), content_layers=[3],
                                                                      style_layers=[0, 2]))[-1].preview
    assert np.abs(book.astype(int) - ours.astype(int)).max() <= 1


# --- the command line ---------------------------------------------------------------------------

def test_cli_stylize_writes_a_png_and_checks_its_input(tmp_path, capsys):
    from PIL import Image

    from vision_core.__main__ import main

    content = tmp_path / "content.png"
    Image.fromarray(_smooth(60, 90)).save(content)
    out = tmp_path / "out.png"
    assert main(["stylize", str(content), "mosaic", "--out", str(out), "--steps", "3", "--height", "32",
                 "--network", "efficientnet_lite0", "--device", "cpu"]) == 0
    assert Image.open(out).size == (48, 32) and "done: 3 steps" in capsys.readouterr().out
    for argv, message in [(["nope", "mosaic"], "CONTENT 'nope' is neither an image file nor one of: chelsea"),
                          (["chelsea", "mosaic", "--steps", "0"], "steps must be an integer in [1, 10000], got '0'"),
                          (["chelsea", "mosaic", "--style-weight", "nan"], "style weight")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["stylize", *argv, "--out", str(out)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_weights_fetch_respects_offline(monkeypatch, tmp_path, capsys):
    from vision_core.__main__ import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VISION_LAB_OFFLINE", "1")
    assert main(["weights", "fetch", "vgg19"]) == 1
    assert "VISION_LAB_OFFLINE is set, so vgg19-dcbb9e9d.pth is not downloaded" in capsys.readouterr().err
