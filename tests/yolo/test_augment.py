"""Every transform must move the boxes exactly as it moves the pixels.

The test images are solid rectangles of distinct pure colours on grey (class k = colour k); after
a transform, the box of each label must match the bounding box of that colour's pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from yolo.augment import (
    FILL, augment_hsv, box_candidates, flip_lr, flip_ud, letterbox, mixup, mosaic4, perspective_matrix,
    random_perspective,
)
from yolo.boxes import xywhn2xyxy, xyxy2xywhn

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0),
           (255, 255, 255), (0, 0, 0)]


def draw(shape: tuple[int, int], boxes: list[tuple[int, int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Grey image with filled rectangles (cls, x1, y1, x2, y2), x2/y2 exclusive; returns (img, labels)."""
    img = np.full((*shape, 3), FILL, dtype=np.uint8)
    for cls, x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = COLOURS[cls]
    return img, np.array(boxes, dtype=np.float32).reshape(-1, 5)


def pixel_box(img: np.ndarray, cls: int, tol: int = 64) -> np.ndarray | None:
    """Bounding box (x1, y1, x2, y2) of the pixels within `tol` of colour `cls` (over half covered)."""
    mask = (np.abs(img.astype(np.int16) - np.array(COLOURS[cls])).max(axis=2) < tol)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def assert_boxes_match(img: np.ndarray, labels: np.ndarray, atol: float = 2.5) -> None:
    assert len(labels) > 0
    for row in labels:
        found = pixel_box(img, int(row[0]))
        assert found is not None, f"class {int(row[0])} has a label but no pixels"
        np.testing.assert_allclose(row[1:5], found, atol=atol, err_msg=f"class {int(row[0])}")


CENTRAL = [(0, 90, 100, 130, 125), (1, 140, 95, 165, 160), (2, 100, 140, 130, 165)]


def test_letterbox_square_and_auto_and_no_scaleup():
    img, labels = draw((200, 300), [(0, 20, 30, 80, 90), (1, 200, 120, 290, 190)])
    out, (gw, gh), (pw, ph) = letterbox(img, 320)
    assert out.shape == (320, 320, 3) and gw == pytest.approx(320 / 300) and gh == pytest.approx(213 / 200)
    assert (pw, ph) == (0, 53)
    moved = labels.copy()
    moved[:, [1, 3]] = labels[:, [1, 3]] * gw + pw
    moved[:, [2, 4]] = labels[:, [2, 4]] * gh + ph
    assert_boxes_match(out, moved, atol=1.5)

    auto, _, (pw, ph) = letterbox(img, 320, auto=True, stride=32)
    assert auto.shape == (224, 320, 3) and ph == 5  # 213 high, padded to the next multiple of 32

    small, ratio, pad = letterbox(img, (640, 480), scaleup=False)
    assert small.shape == (640, 480, 3) and ratio == (1.0, 1.0) and pad == (90.0, 220.0)


@pytest.mark.parametrize(
    "part",
    [dict(translate=0.3), dict(scale=0.5), dict(degrees=45.0), dict(degrees=180.0), dict(shear=10.0),
     dict(perspective=0.0008), dict(degrees=20.0, scale=0.4, shear=5.0, translate=0.1)],
    ids=["translate", "scale", "degrees45", "degrees180", "shear", "perspective", "all"],
)
def test_random_perspective_parts_keep_boxes_on_pixels(part):
    # For a rectangle, the corners are the extreme points under any affine or projective map, so
    # the enclosing box of the warped corners equals the box of the warped pixels whatever the
    # angle (a 90-degree turn swaps w and h exactly; 45 degrees gives the widest box). Only
    # bilinear resampling blurs the edges, by about a pixel.
    img, labels = draw((256, 256), CENTRAL)
    for seed in range(4):
        out, moved = random_perspective(img, labels, np.random.default_rng(seed), **part)
        assert out.shape == img.shape and len(moved) == len(labels)
        assert_boxes_match(out, moved)


def test_random_perspective_clips_and_drops_boxes_pushed_out():
    img, labels = draw((256, 256), [(0, 10, 10, 60, 50), (1, 200, 190, 250, 250), (2, 110, 110, 150, 150)])
    kept_total = 0
    for seed in range(12):
        out, moved = random_perspective(img, labels, np.random.default_rng(seed), translate=0.45)
        for row in moved:  # clipped boxes still match the visible part (no rotation: clipping is exact)
            np.testing.assert_allclose(row[1:5], pixel_box(out, int(row[0])), atol=1.5)
        for cls in set(range(3)) - set(moved[:, 0].astype(int).tolist()):
            visible = pixel_box(out, cls)  # a dropped box left at most a sliver
            if visible is not None:
                w, h = visible[2] - visible[0], visible[3] - visible[1]
                area = (labels[cls, 3] - labels[cls, 1]) * (labels[cls, 4] - labels[cls, 2])
                assert w <= 3 or h <= 3 or w * h <= 0.12 * area
        kept_total += len(moved)
    assert 0 < kept_total < 36  # some boxes left the image, some stayed


def test_identity_warp_returns_the_same_pixels():
    img, labels = draw((64, 96), [(0, 10, 10, 30, 40)])
    out, moved = random_perspective(img, labels, np.random.default_rng(0))
    assert np.array_equal(out, img) and np.array_equal(moved, labels)
    matrix, s = perspective_matrix(np.random.default_rng(0), (64, 96), (64, 96))
    np.testing.assert_allclose(matrix, np.eye(3), atol=1e-12)
    assert s == 1.0


def test_box_candidates_rule():
    before = np.array([[0, 0, 100, 100]] * 4, dtype=np.float32)
    after = np.array([[0, 0, 50, 50], [0, 0, 2, 50], [0, 0, 30, 30], [0, 0, 99, 4.5]], dtype=np.float32)
    # keeps a quarter-area box; drops one 2 px wide, one under 10 % area, one with aspect > 20
    assert box_candidates(before, after).tolist() == [True, False, False, False]


@pytest.mark.parametrize("flip", [flip_lr, flip_ud])
def test_flips(flip):
    img, labels = draw((120, 160), [(0, 5, 10, 40, 30), (3, 100, 60, 150, 115)])
    normalised = labels.copy()
    normalised[:, 1:] = xyxy2xywhn(labels[:, 1:], 160, 120)
    out, flipped = flip(img, normalised)
    assert not np.array_equal(flipped, normalised)
    pixels = flipped.copy()
    pixels[:, 1:] = xywhn2xyxy(flipped[:, 1:], 160, 120)
    assert_boxes_match(out, pixels, atol=0.01)


def test_hsv_changes_colours_not_where_objects_are():
    img, _ = draw((80, 80), [(0, 5, 5, 30, 30), (1, 40, 40, 75, 70), (4, 40, 5, 70, 25)])
    out = augment_hsv(img, 0.1, 0.7, 0.4, np.random.default_rng(3))
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)

    def coloured(x: np.ndarray) -> np.ndarray:  # grey stays grey under any hue / saturation gain
        return (x.max(axis=2).astype(int) - x.min(axis=2)) > 20

    assert np.array_equal(coloured(out), coloured(img))
    assert augment_hsv(img, 0.0, 0.0, 0.0, np.random.default_rng(0)) is img


def test_mosaic_tiles_images_and_boxes():
    parts = [draw((120, 160), [(0, 10, 10, 60, 50), (1, 100, 60, 150, 110)]),
             draw((160, 120), [(2, 20, 20, 70, 80), (3, 30, 100, 110, 150)]),
             draw((160, 160), [(4, 5, 5, 60, 60), (5, 90, 90, 150, 150)]),
             draw((100, 160), [(6, 10, 10, 50, 50), (7, 100, 20, 155, 90)])]
    images = [p[0] for p in parts]
    normalised = []
    for img, lab in parts:
        n = lab.copy()
        n[:, 1:] = xyxy2xywhn(lab[:, 1:], img.shape[1], img.shape[0])
        normalised.append(n)
    canvas, boxes = mosaic4(images, normalised, 160, (150, 170))
    assert canvas.shape == (320, 320, 3) and len(boxes) == 8
    assert_boxes_match(canvas, boxes, atol=0.01)  # only whole-pixel shifts and clipping
    for seed in range(4):
        out, moved = random_perspective(canvas, boxes, np.random.default_rng(seed), scale=0.3,
                                        translate=0.1, border=(-80, -80))
        assert out.shape == (160, 160, 3)
        if len(moved):
            assert_boxes_match(out, moved)


def test_mixup_blends_and_concatenates():
    black = np.zeros((64, 64, 3), dtype=np.uint8)
    a, b = black.copy(), black.copy()
    a[5:30, 10:40] = (0, 0, 255)  # red channel only
    b[35:60, 20:50] = (0, 255, 0)  # green channel only
    la = np.array([[0, 10, 5, 40, 30]], dtype=np.float32)
    lb = np.array([[1, 20, 35, 50, 60]], dtype=np.float32)
    out, labels = mixup(a, la, b, lb, np.random.default_rng(0))
    assert labels.tolist() == [la[0].tolist(), lb[0].tolist()]
    for channel, row in ((2, la[0]), (1, lb[0])):
        ys, xs = np.nonzero(out[:, :, channel] > 0)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == row[1:].tolist()
    assert 90 < out[10, 20, 2] < 165  # about half of 255
