"""Test-time augmentation: every view is mapped back to the input frame (un-scaled, un-mirrored),
so on an image and its mirror the mapped-back boxes agree."""

from __future__ import annotations

import torch
from torch import nn

from yolo.boxes import box_iou, xywh2xyxy
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


class BrightBoxFinder(nn.Module):
    """A stand-in detector whose answer is known: one box around the pixels brighter than 0.9,
    placed in the stride-16 rows (which no TTA view drops); every other row has objectness 0."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))
        self.nc = 1

    def forward(self, x: torch.Tensor):
        b, _, h, w = x.shape
        raw = [x.new_zeros(b, 1, h // int(s), w // int(s), 6) for s in self.stride]
        decoded = x.new_zeros(b, sum(r.shape[2] * r.shape[3] for r in raw), 6)
        row = raw[0].shape[2] * raw[0].shape[3]  # first stride-16 row
        for i, img in enumerate(x):
            ys, xs = (img.mean(0) > 0.9).nonzero(as_tuple=True)
            x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            decoded[i, row] = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1,
                                           x.new_tensor(1.0), x.new_tensor(1.0)))
        return decoded, raw


def _found_boxes(decoded: torch.Tensor) -> torch.Tensor:
    """xyxy of every row with objectness, from decoded [1, N, 6]."""
    return xywh2xyxy(decoded[0, decoded[0, :, 4] > 0.5, :4])


def test_every_view_of_an_image_and_its_mirror_maps_back_onto_the_object():
    image = torch.zeros(1, 3, 128, 160)
    image[..., 30:52, 20:61] = 1.0  # the object: x 20..61, y 30..52
    truth = torch.tensor([[20.0, 30.0, 61.0, 52.0]])
    tta = TestTimeAugmentation(BrightBoxFinder()).eval()
    on_image = _found_boxes(tta(image)[0])
    on_mirror = _found_boxes(tta(image.flip(3))[0])
    mirrored_back = on_mirror.clone()
    mirrored_back[:, 0], mirrored_back[:, 2] = 160 - on_mirror[:, 2], 160 - on_mirror[:, 0]
    assert len(on_image) == len(on_mirror) == 3  # one box per view
    for boxes in (on_image, mirrored_back):
        assert torch.allclose(boxes, truth.expand_as(boxes), atol=2.0)  # within resampling blur
        assert bool((box_iou(boxes, truth) > 0.9).all())


def test_scale_edges_drop_the_coarsest_and_finest_levels():
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=2).eval()
    image = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        kept = TestTimeAugmentation(model).eval()(image)[0].shape[1]
        everything = TestTimeAugmentation(model, drop_scale_edges=False).eval()(image)[0].shape[1]
    # views 128x160, 128x160 (106x132 padded) and 96x128 (85x107 padded); 3 anchors per cell
    full, small = 3 * (16 * 20 + 8 * 10 + 4 * 5), 3 * (12 * 16 + 6 * 8 + 3 * 4)
    assert everything == 2 * full + small
    assert kept == everything - 3 * 4 * 5 - 3 * 12 * 16
