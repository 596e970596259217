"""Test-time augmentation: views are mapped back to the input exactly, and on an image and its
mirror the merged detections agree."""

from __future__ import annotations

import cv2
import pytest
import torch

from yolo.boxes import box_iou, non_max_suppression
from yolo.checkpoint import load_model
from yolo.data import load_data_config
from yolo.model import build_model
from yolo.tta import TestTimeAugmentation, map_to_input, scale_image


def test_scale_image_pads_to_a_stride_multiple():
    img = torch.rand(1, 3, 128, 160)
    scaled, (sy, sx) = scale_image(img, 0.67, 32)
    assert scaled.shape[2:] == (96, 128)  # 85 x 107 rounded up to the grid
    assert (sy, sx) == (85 / 128, 107 / 160)
    assert torch.allclose(scaled[..., 85:, :], torch.full_like(scaled[..., 85:, :], 114 / 255))
    same, ratio = scale_image(img, 1.0, 32)
    assert same is img and ratio == (1.0, 1.0)


def test_map_to_input_undoes_scale_and_mirror():
    boxes = torch.tensor([[[30.0, 40.0, 20.0, 10.0, 0.9, 0.1], [150.0, 5.0, 8.0, 6.0, 0.5, 0.7]]])
    width, (sy, sx) = 160.0, (0.6640625, 0.66875)
    view = boxes.clone()
    view[..., 0] = (width - boxes[..., 0]) * sx  # mirror, then scale: what the network sees
    view[..., 1] *= sy
    view[..., 2] *= sx
    view[..., 3] *= sy
    assert torch.allclose(map_to_input(view, (sy, sx), width), boxes, atol=1e-4)
    assert torch.equal(map_to_input(boxes, (1.0, 1.0), None), boxes)


def test_mirrored_view_of_the_mirror_is_the_plain_model():
    """Exact: the mirrored pass on a mirrored image runs the model on the original pixels."""
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=3).eval()
    image = torch.rand(1, 3, 96, 128)
    mirrored_pass = TestTimeAugmentation(model, scales=(1.0,), flips=(True,)).eval()
    with torch.no_grad():
        plain, _ = model(image)
        mapped, _ = mirrored_pass(image.flip(3))
    expected = plain.clone()
    expected[..., 0] = 128 - plain[..., 0]  # boxes of the original, seen in the mirror's frame
    assert torch.allclose(mapped, expected, atol=1e-4)


def _detections(model, img: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        decoded, _ = model(img)
    return non_max_suppression(decoded, 0.25, 0.45, multi_label=False)[0]


def _agree(a: torch.Tensor, b: torch.Tensor, min_iou: float) -> bool:
    """Every box of `a` has a box of the same class in `b` overlapping it by `min_iou`."""
    if not len(a):
        return True
    iou = box_iou(a[:, :4], b[:, :4]) * (a[:, 5:6] == b[:, 5][None])
    return bool((iou.max(1).values >= min_iou).all()) if len(b) else False


def test_tta_on_an_image_and_its_mirror_agree(trained_run, tiny_synthetic):
    config, result, _ = trained_run
    model, _ = load_model(result.weights)
    tta = TestTimeAugmentation(model).eval()
    images = sorted(load_data_config(tiny_synthetic).val)[:4]
    seen = 0
    for path in images:
        bgr = cv2.imread(str(path))
        img = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        width = img.shape[3]
        plain = _detections(model, img)
        merged = _detections(tta, img)
        of_mirror = _detections(tta, img.flip(3))
        back = of_mirror.clone()
        back[:, 0], back[:, 2] = width - of_mirror[:, 2], width - of_mirror[:, 0]
        confident = merged[merged[:, 4] > 0.5]
        seen += len(confident)
        assert _agree(confident, back, 0.7), path  # the mirror's boxes land on the image's objects
        assert _agree(plain[plain[:, 4] > 0.5], merged, 0.7), path  # TTA keeps what the model finds
        for scale, flip in ((0.83, True), (0.67, False)):  # each view alone is mapped back right
            view = _detections(TestTimeAugmentation(model, (scale,), (flip,)).eval(), img)
            assert _agree(view[view[:, 4] > 0.5], merged, 0.6), (path, scale, flip)
    assert seen > 0, "the trained model should find something confidently"
