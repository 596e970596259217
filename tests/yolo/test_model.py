"""Tests for the YOLOv5 v6+ network: sizes against YOLOv5's published numbers, the Detect
contract (shapes, decoding, anchors), fusing, configs and parameter naming."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from yolo.layers import C3, SPPF, BN_EPS, BN_MOMENTUM, Conv, Detect
from yolo.model import (
    BACKBONE_LAYERS,
    DEFAULT_ANCHORS,
    Detector,
    ModelConfig,
    backbone_prefixes,
    build_model,
    count_parameters,
    default_anchors,
    gflops,
)

# YOLOv5's own model summary for 80 classes: params before / after fusing, GFLOPs at 640 fused.
YOLOV5_SIZES = {
    "n": (1_872_157, 1_867_405, 4.5),
    "s": (7_235_389, 7_225_885, 16.4),
    "m": (21_190_557, 21_172_173, 48.9),
    "l": (46_563_709, 46_533_693, 109.0),
    "x": (86_749_405, 86_705_005, 205.4),
}


@pytest.fixture(scope="module")
def nano() -> Detector:
    torch.manual_seed(0)
    return build_model("yolov5n")


def _with_trained_batchnorm(model: Detector) -> Detector:
    """Give every BN non-trivial affine params and running stats, as a trained model has."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
        model.train()
        for _ in range(3):  # running stats from real activations
            model(torch.rand(2, 3, 64, 96, generator=generator))
    return model.eval()


@pytest.mark.parametrize("scale", list(YOLOV5_SIZES))
def test_sizes_match_yolov5(scale: str) -> None:
    params, fused_params, expected_gflops = YOLOV5_SIZES[scale]
    with torch.device("meta"):  # shapes only: fast and no memory for the big scales
        model = build_model(scale)
    assert count_parameters(model) == params
    assert gflops(model, 640) == pytest.approx(expected_gflops, rel=0.02)
    assert count_parameters(model.fuse()) == fused_params


def test_real_build_matches_meta_counts_and_flops(nano: Detector) -> None:
    assert count_parameters(nano) == YOLOV5_SIZES["n"][0]
    assert count_parameters(build_model("s")) == YOLOV5_SIZES["s"][0]
    # FLOPs on real tensors at 640 equal the meta count, and a conv net's FLOPs scale with area
    fused = copy.deepcopy(nano).eval().fuse()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fused(torch.zeros(1, 3, 640, 640))
    assert counter.get_total_flops() / 1e9 == pytest.approx(gflops(nano, 640), rel=1e-9)
    assert gflops(nano, 64) * 100 == pytest.approx(gflops(nano, 640), rel=1e-9)
    assert gflops(nano, (320, 640)) == pytest.approx(gflops(nano, 640) / 2, rel=1e-9)
    assert not nano.is_fused  # gflops works on a copy


def test_fuse_preserves_eval_output() -> None:
    torch.manual_seed(0)
    model = _with_trained_batchnorm(build_model("n"))
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        decoded, raw = model(x)
        fused = copy.deepcopy(model)
        assert fused.fuse() is fused
        fused_decoded, fused_raw = fused(x)
    assert fused.is_fused and not model.is_fused
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert all(m.bn is None and m.conv.bias is not None for m in fused.modules() if isinstance(m, Conv))
    for a, b in zip(raw, fused_raw):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    # decoded xywh are pixels (hundreds): float32 only keeps ~1e-7 relative there
    torch.testing.assert_close(fused_decoded, decoded, rtol=1e-6, atol=1e-4)


def test_conv_fuse_on_its_own() -> None:
    torch.manual_seed(0)
    conv = Conv(8, 16, 3, 2)
    with torch.no_grad():
        conv.bn.running_mean.uniform_(-1, 1)
        conv.bn.running_var.uniform_(0.5, 2)
        conv.bn.weight.uniform_(0.5, 1.5)
        conv.bn.bias.uniform_(-1, 1)
    conv.eval()
    x = torch.randn(2, 8, 20, 24)
    with torch.no_grad():
        expected = conv(x)
        conv.fuse()
        torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-5)
    assert conv.bn is None and [n for n, _ in conv.named_parameters()] == ["conv.weight", "conv.bias"]


def test_blocks_use_yolov5_batchnorm_settings(nano: Detector) -> None:
    norms = [m for m in nano.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == BN_EPS == 1e-3 and m.momentum == BN_MOMENTUM == 0.03 for m in norms)


def test_output_shapes_train_and_eval(nano: Detector) -> None:
    x = torch.rand(2, 3, 256, 320)
    nano.train()
    raw = nano(x)
    assert [tuple(p.shape) for p in raw] == [(2, 3, 32, 40, 85), (2, 3, 16, 20, 85), (2, 3, 8, 10, 85)]
    sum(p.mean() for p in raw).backward()
    assert all(p.grad is not None for p in nano.parameters())
    nano.zero_grad(set_to_none=True)
    nano.eval()
    with torch.no_grad():
        decoded, raw_eval = nano(x)
    assert decoded.shape == (2, 3 * (32 * 40 + 16 * 20 + 8 * 10), 85)
    assert [p.shape for p in raw_eval] == [p.shape for p in raw]


def test_decoding_matches_the_yolov5_formula(nano: Detector) -> None:
    nano.eval()
    with torch.no_grad():
        decoded, raw = nano(torch.rand(1, 3, 96, 160))  # rectangular: grids 12x20, 6x10, 3x5
    detect = nano.detect
    offset = 0
    for level, p in enumerate(raw):
        _, na, ny, nx, no = p.shape
        stride = float(detect.stride[level])
        for a, y, x in [(0, 0, 0), (na - 1, ny - 1, nx - 1), (1, ny // 2, nx - 1)]:
            s = p[0, a, y, x].sigmoid()
            anchor = detect.anchors[level, a] * stride
            expected = torch.cat((
                (s[0:2] * 2 - 0.5 + torch.tensor([x, y])) * stride,
                (s[2:4] * 2) ** 2 * anchor,
                s[4:],
            ))
            row = decoded[0, offset + (a * ny + y) * nx + x]
            torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-4)
        offset += na * ny * nx
    assert offset == decoded.shape[1]


def test_strides_and_anchor_units(nano: Detector) -> None:
    assert nano.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():  # the strides are what the feature maps measure
        for side in (64, 96):
            maps = nano.eval()._detect_inputs(torch.zeros(1, 3, side, side))
            assert [side / m.shape[-2] for m in maps] == nano.stride.tolist()
    assert nano.detect.stride is nano.stride
    pixels = nano.detect.anchors * nano.stride.view(-1, 1, 1)
    torch.testing.assert_close(pixels, torch.tensor(DEFAULT_ANCHORS))
    assert "model.24.anchors" in nano.state_dict()


def test_set_anchors(nano: Detector) -> None:
    model = copy.deepcopy(nano)
    new = torch.tensor(DEFAULT_ANCHORS) * 1.5
    model.set_anchors(new)
    torch.testing.assert_close(model.detect.anchors, new / torch.tensor([8.0, 16.0, 32.0]).view(-1, 1, 1))
    torch.testing.assert_close(torch.tensor(model.config.anchors), new)
    with pytest.raises(ValueError):
        model.set_anchors(torch.ones(3, 2, 2))


def test_detect_bias_prior(nano: Detector) -> None:
    detect = nano.detect
    for conv, stride, channels in zip(detect.m, (8, 16, 32), (64, 128, 256)):
        bias = conv.bias.detach().view(detect.na, detect.no)
        bound = 1 / math.sqrt(channels)  # torch's default bias init range for a 1x1 conv
        obj_prior = math.log(8 / (640 / stride) ** 2)
        cls_prior = math.log(0.6 / (80 - 0.99))
        assert ((bias[:, 4] - obj_prior).abs() <= bound).all()
        assert ((bias[:, 5:] - cls_prior).abs() <= bound).all()
        assert (bias[:, :4].abs() <= bound).all()


@pytest.mark.parametrize("nc", [1, 20])
def test_other_class_counts(nc: int) -> None:
    model = build_model("n", nc=nc).eval()
    assert model.nc == model.detect.nc == model.config.nc == nc
    assert model.detect.no == nc + 5
    with torch.no_grad():
        decoded, raw = model(torch.rand(1, 3, 64, 64))
    assert decoded.shape == (1, 3 * (64 + 16 + 4), nc + 5)
    assert raw[0].shape == (1, 3, 8, 8, nc + 5)


@pytest.mark.parametrize("per_level", [2, 5])
def test_other_anchor_counts(per_level: int) -> None:
    model = build_model("n", nc=4, anchors=per_level)
    assert model.detect.na == per_level
    assert model.detect.anchors.shape == (3, per_level, 2)
    assert model.config.anchors_per_level == per_level
    raw = model.train()(torch.rand(2, 3, 64, 128))
    assert raw[2].shape == (2, per_level, 2, 4, 9)
    with torch.no_grad():
        decoded, _ = model.eval()(torch.rand(1, 3, 64, 128))
    assert decoded.shape == (1, per_level * (8 * 16 + 4 * 8 + 2 * 4), 9)
    # explicit pixel anchors, YAML-style flat rows
    rows = [[10, 10] * per_level, [40, 40] * per_level, [160, 160] * per_level]
    explicit = build_model("n", anchors=rows)
    assert explicit.detect.anchors[2, 0].tolist() == [5.0, 5.0]


def test_default_anchor_resampling_is_sorted_and_in_range() -> None:
    assert default_anchors(3) == DEFAULT_ANCHORS
    for per_level in (1, 2, 4, 5):
        pairs = [p for level in default_anchors(per_level) for p in level]
        areas = [w * h for w, h in pairs]
        assert len(pairs) == 3 * per_level and areas == sorted(areas)
        assert min(areas) >= 10 * 13 - 1e-6 and max(areas) <= 373 * 326 + 1e-6


def test_parameter_names_and_layer_wiring(nano: Detector) -> None:
    names = [n for n, _ in nano.named_parameters()]
    assert all(n.startswith("model.") for n in names)
    assert {int(n.split(".")[1]) for n in names} == set(range(25)) - {11, 12, 15, 16, 19, 22}
    assert names[0] == "model.0.conv.weight" and names[-1] == "model.24.m.2.bias"
    assert BACKBONE_LAYERS == 10 and backbone_prefixes()[-1] == "model.9."
    backbone = list(nano.model[:BACKBONE_LAYERS])
    assert [type(m) for m in backbone] == [Conv, Conv, C3, Conv, C3, Conv, C3, Conv, C3, SPPF]
    assert backbone[0].conv.kernel_size == (6, 6) and backbone[0].conv.stride == (2, 2)
    assert isinstance(nano.model[11], nn.Upsample) and nano.model[11].mode == "nearest"
    assert isinstance(nano.detect, Detect) and nano.detect is nano.model[24]
    assert nano.model[12].from_indices == (11, 6)
    assert nano.model[24].from_indices == (17, 20, 23)
    assert nano._saved_layers == {4, 6, 10, 14, 17, 20}
    assert [len(nano.model[i].m) for i in (2, 4, 6, 8)] == [1, 2, 3, 1]


def test_depth_and_width_scaling() -> None:
    with torch.device("meta"):
        large = build_model("l")
        xlarge = build_model("x")
    assert [len(large.model[i].m) for i in (2, 4, 6, 8)] == [3, 6, 9, 3]
    assert [len(xlarge.model[i].m) for i in (2, 4, 6, 8)] == [4, 8, 12, 4]
    assert xlarge.model[0].conv.out_channels == 80 and xlarge.model[9].cv2.conv.out_channels == 1280


@pytest.mark.parametrize("name", ["yolov5n", "n", "YOLOv5n", "yolov5n.yaml"])
def test_name_forms(name: str) -> None:
    config = ModelConfig.for_scale(name)
    assert (config.name, config.depth_multiple, config.width_multiple) == ("yolov5n", 0.33, 0.25)


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="yolov5n.*yolov5s.*yolov5m.*yolov5l.*yolov5x"):
        build_model("yolov5z")
    with pytest.raises(ValueError):
        build_model("yolov5n6")


def test_config_round_trip_and_rebuild() -> None:
    config = ModelConfig.for_scale("s", nc=7, anchors=2)
    as_dict = config.to_dict()
    json.dumps(as_dict)  # plain types only
    snapshot = copy.deepcopy(as_dict)
    assert ModelConfig.from_dict(as_dict) == config
    assert as_dict == snapshot
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_dict({**as_dict, "bogus": 1})
    with pytest.raises(Exception):
        config.nc = 3  # frozen
    model = build_model(config)
    assert model.config == config and model.nc == 7 and model.detect.na == 2
    assert build_model(config, nc=3).nc == 3
    with pytest.raises(ValueError):
        ModelConfig(anchors=((10, 13, 16, 30), (30, 61)))  # too few levels
    with pytest.raises(ValueError):
        ModelConfig(anchors=((10, 13), (30, 61, 1, 2), (116, 90)))  # uneven counts


def test_rectangular_inputs_multiple_of_32(nano: Detector) -> None:
    nano.eval()
    with torch.no_grad():
        for h, w in [(32, 64), (224, 96), (320, 192)]:
            decoded, _ = nano(torch.rand(1, 3, h, w))
            cells = sum((h // s) * (w // s) for s in (8, 16, 32))
            assert decoded.shape == (1, 3 * cells, 85)
            assert decoded[..., 0].max() < w + 2 * 32 and decoded[..., 1].max() < h + 2 * 32
