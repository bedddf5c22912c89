"""Neural style transfer (d2l 14.12): the book's losses, pictures in and out, taps, the streamed loop."""

import math
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from vision_core.progress import Progress
from vision_core.style import (
    BOOK_CONTENT_LAYERS,
    BOOK_STYLE_LAYERS,
    RGB_MEAN,
    RGB_STD,
    FeatureTaps,
    compute_loss,
    content_loss,
    gram,
    postprocess,
    preprocess,
    style_loss,
    style_transfer,
    tv_loss,
    vgg19_taps,
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


# --- taps -----------------------------------------------------------------------------------

def test_feature_taps_match_the_sequential_and_are_frozen():
    net = _tiny_net()
    taps = FeatureTaps(net, content_layers=[3], style_layers=[2, 0])
    assert len(taps.layers) == 4  # the last conv is never run
    X = torch.randn(1, 3, 12, 12)
    outs, Y = [], X
    for layer in net:
        Y = layer(Y)
        outs.append(Y)
    contents, styles = taps(X)
    assert len(contents) == 1 and len(styles) == 2
    assert torch.equal(contents[0], outs[3])
    assert torch.equal(styles[0], outs[2]) and torch.equal(styles[1], outs[0])
    assert all(not p.requires_grad for p in taps.parameters())
    taps.train()
    assert not taps.layers.training
    # Gradients reach the input only.
    Xg = X.clone().requires_grad_(True)
    sum(t.sum() for t in taps(Xg)[1]).backward()
    assert Xg.grad is not None and all(p.grad is None for p in taps.parameters())


def test_feature_taps_rejects_bad_indices():
    with pytest.raises(ValueError, match=r"style_layers\[1\] must be an integer in \[0, 4\]"):
        FeatureTaps(_tiny_net(), [3], [0, 5])
    with pytest.raises(ValueError, match="content_layers"):
        FeatureTaps(_tiny_net(), [], [0])
    with pytest.raises(ValueError, match="backbone"):
        FeatureTaps(nn.Conv2d(3, 3, 1), [0], [0])


def test_vgg19_taps_loads_a_torchvision_state_dict():
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    features = make_layers(cfgs["E"])  # the layers of torchvision.models.vgg19().features, without the classifier
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # ignored
    taps = vgg19_taps(state)
    assert taps.content_layers == BOOK_CONTENT_LAYERS and taps.style_layers == BOOK_STYLE_LAYERS
    assert len(taps.layers) == 29
    assert torch.equal(taps.layers[28].weight, state["features.28.weight"])
    assert isinstance(taps.layers[28], nn.Conv2d) and isinstance(taps.layers[4], nn.MaxPool2d)
    contents, styles = taps(torch.randn(1, 3, 32, 32))
    assert contents[0].shape == (1, 512, 4, 4) and [s.shape[1] for s in styles] == [64, 128, 256, 512, 512]
    # The key layout matches torchvision's own VGG-19.
    assert set(torchvision.models.vgg19(weights=None).features.state_dict()) >= set(taps.layers.state_dict())
    del state["features.0.weight"]
    with pytest.raises(ValueError, match="missing"):
        vgg19_taps(state)


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


def test_style_transfer_lr_decays_and_previews_are_throttled():
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


def test_accelerator_policy_reads_only_at_previews(monkeypatch):
    # The accelerator path (no host read between previews), exercised on the CPU.
    from vision_core import style

    monkeypatch.setattr(style, "_sync_free", lambda device: True)
    records = _run(steps=8, frame_interval=3600.0)
    assert [r.step for r in records] == [1, 8] and all(r.preview is not None for r in records)
    monkeypatch.undo()
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
    ({"lr": 0}, r"lr must be a finite number in \(0.0, 10.0\]"),
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


def test_style_transfer_is_cheap_enough():
    start = time.perf_counter()
    _run(steps=10)
    assert time.perf_counter() - start < 10
