"""Image augmentation for detection that keeps every box exact.

Geometric steps carry boxes as pixel rows `[cls, x1, y1, x2, y2]` (the form a warp can move);
flips come last, on normalised rows `[cls, cx, cy, w, h]`, because there a flip is `1 - x`. Every
random draw comes from a numpy Generator the caller passes in, so the dataset can rebuild any
sample exactly from (seed, epoch, index) whatever process draws it.

YOLOv5's `copy_paste` pastes object *segments* into other images. Our labels are boxes only, so
there is nothing to cut out and `hyp.copy_paste` has no effect (it stays in the hyp set so that
YOLOv5 hyp files load and evolve unchanged).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from yolo.boxes import xywhn2xyxy

FILL = 114  # grey of padding and warp borders (YOLOv5's value)
_FILL_BGR = (FILL, FILL, FILL)


def letterbox(
    img: np.ndarray,
    new_shape: int | tuple[int, int],
    color: int = FILL,
    auto: bool = False,
    scaleup: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize keeping the aspect ratio, then pad to `new_shape` (int or (h, w)).

    Returns (image, (gain_w, gain_h), (pad_w, pad_h)): a point x of the input lands at
    x * gain_w + pad_w. The gains are the real ones after rounding the resized size, and the pads
    are the whole pixels added on the left / top, so that the mapping is exact. `auto` pads only
    up to the next multiple of `stride` (minimum rectangle); `scaleup=False` never enlarges,
    which keeps validation faithful to the original pixels.
    """
    h0, w0 = img.shape[:2]
    new_h, new_w = (new_shape, new_shape) if isinstance(new_shape, int) else new_shape
    r = min(new_h / h0, new_w / w0)
    if not scaleup:
        r = min(r, 1.0)
    w, h = max(1, int(round(w0 * r))), max(1, int(round(h0 * r)))
    pad_w, pad_h = new_w - w, new_h - h
    if auto:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    if (w, h) != (w0, h0):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    left, top = pad_w // 2, pad_h // 2
    if pad_w or pad_h:
        img = cv2.copyMakeBorder(
            img, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=(color, color, color)
        )
    return img, (w / w0, h / h0), (float(left), float(top))


def perspective_matrix(
    rng: np.random.Generator,
    in_shape: tuple[int, int],
    out_shape: tuple[int, int],
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    shear: float = 0.0,
    perspective: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Draw YOLOv5's random 3x3 warp; returns (matrix, scale factor drawn).

    The order matters and is YOLOv5's: move the input centre to the origin, perspective,
    rotation + scale about that centre, shear, then translate to a random point around the
    output centre (`translate` is a fraction of the output size).
    """
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -in_shape[1] / 2, -in_shape[0] / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = rng.uniform(-perspective, perspective, size=2)
    rot = np.eye(3)
    angle, s = rng.uniform(-degrees, degrees), rng.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=s)
    sh = np.eye(3)
    sh[0, 1], sh[1, 0] = np.tan(np.radians(rng.uniform(-shear, shear, size=2)))
    shift = np.eye(3)
    shift[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_shape[1]
    shift[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_shape[0]
    return shift @ sh @ rot @ persp @ centre, float(s)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Warp the four corners of each xyxy box; return the enclosing boxes clipped to out_shape.

    For a rectangle the corners are its extreme points under any projective map, so the
    enclosing box of the warped corners is the tight box of the warped object (until clipping).
    """
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 4), dtype=np.float32)
    corners = np.ones((n * 4, 3))
    corners[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    warped = corners @ matrix.T
    xy = (warped[:, :2] / warped[:, 2:3]).reshape(n, 8)
    x, y = xy[:, 0::2], xy[:, 1::2]
    out = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], axis=1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, out_shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, out_shape[0])
    return out.astype(np.float32)


def box_candidates(
    before: np.ndarray,
    after: np.ndarray,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.1,
    eps: float = 1e-16,
) -> np.ndarray:
    """Boolean mask of warped boxes worth keeping (YOLOv5's rule).

    A box survives when it is wider and taller than `wh_thr` px, keeps more than `area_thr` of
    its (scale-adjusted) area — slivers cut off at the border teach nothing — and is not a
    needle (aspect ratio under `ar_thr`).
    """
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


def random_perspective(
    img: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    shear: float = 0.0,
    perspective: float = 0.0,
    border: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Warp `img` and its labels `[n, 5]` (cls, x1, y1, x2, y2 pixels) by one random matrix.

    The output is the input size plus `2 * border` (h, w): a negative border crops, which is how
    a 2s mosaic canvas comes back to s. Boxes failing `box_candidates` are dropped.
    """
    out_shape = (img.shape[0] + 2 * border[0], img.shape[1] + 2 * border[1])
    matrix, s = perspective_matrix(rng, img.shape[:2], out_shape, degrees, translate, scale, shear, perspective)
    if border != (0, 0) or not np.allclose(matrix, np.eye(3)):
        size = (out_shape[1], out_shape[0])
        if perspective:
            img = cv2.warpPerspective(img, matrix, dsize=size, borderValue=_FILL_BGR)
        else:
            img = cv2.warpAffine(img, matrix[:2], dsize=size, borderValue=_FILL_BGR)
    if len(labels) == 0:
        return img, np.zeros((0, 5), dtype=np.float32)
    boxes = transform_boxes(labels[:, 1:5], matrix, out_shape)
    keep = box_candidates(labels[:, 1:5] * s, boxes)
    out = np.concatenate([labels[keep, :1], boxes[keep]], axis=1).astype(np.float32)
    return img, out


def mosaic4(
    images: list[np.ndarray], labels: list[np.ndarray], img_size: int, centre: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Tile four images around `centre` on a 2*img_size canvas filled with grey.

    Image k goes to quadrant k (top-left, top-right, bottom-left, bottom-right) with its corner
    touching the centre; parts beyond the canvas are cut. `labels[k]` are normalised
    (cls, cx, cy, w, h) of image k; returns the canvas and pixel (cls, x1, y1, x2, y2) rows
    clipped to the canvas.
    """
    side = 2 * img_size
    xc, yc = centre
    canvas = np.full((side, side, 3), FILL, dtype=np.uint8)
    placed = []
    for k, (img, lab) in enumerate(zip(images, labels)):
        h, w = img.shape[:2]
        ox = xc - w if k in (0, 2) else xc  # where the image's top-left corner lands
        oy = yc - h if k in (0, 1) else yc
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + w, side), min(oy + h, side)
        if x2 > x1 and y2 > y1:
            canvas[y1:y2, x1:x2] = img[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
        if len(lab):
            rows = np.empty((len(lab), 5), dtype=np.float32)
            rows[:, 0] = lab[:, 0]
            rows[:, 1:] = xywhn2xyxy(lab[:, 1:5], w, h, ox, oy)
            placed.append(rows)
    if not placed:
        return canvas, np.zeros((0, 5), dtype=np.float32)
    boxes = np.concatenate(placed)
    boxes[:, 1:] = boxes[:, 1:].clip(0, side)
    return canvas, boxes


def mixup(
    img1: np.ndarray, labels1: np.ndarray, img2: np.ndarray, labels2: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blend two same-size images with a Beta(32, 32) ratio (about 0.5) and keep both label sets."""
    r = rng.beta(32.0, 32.0)
    img = cv2.addWeighted(img1, r, img2, 1.0 - r, 0.0)
    return img, np.concatenate([labels1, labels2], axis=0)


def augment_hsv(
    img: np.ndarray, hgain: float, sgain: float, vgain: float, rng: np.random.Generator
) -> np.ndarray:
    """Random hue / saturation / value gains applied through lookup tables (BGR in, new BGR out).

    Each gain is drawn in [1 - g, 1 + g]; hue wraps around OpenCV's 0-179 circle, saturation and
    value saturate at 255. Three 256-entry tables make it one pass over the pixels.
    """
    if not (hgain or sgain or vgain):
        return img
    gains = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    x = np.arange(256, dtype=np.float64)
    lut = np.empty((1, 256, 3), dtype=np.uint8)  # one table per channel, applied in one call
    lut[0, :, 0] = (x * gains[0]) % 180
    lut[0, :, 1] = np.clip(x * gains[1], 0, 255)
    lut[0, :, 2] = np.clip(x * gains[2], 0, 255)
    return cv2.cvtColor(cv2.LUT(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), lut), cv2.COLOR_HSV2BGR)


def flip_lr(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; labels are normalised (cls, cx, cy, w, h). Returns new arrays."""
    labels = labels.copy()
    labels[:, 1] = 1.0 - labels[:, 1]
    return cv2.flip(img, 1), labels


def flip_ud(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom; labels are normalised (cls, cx, cy, w, h). Returns new arrays."""
    labels = labels.copy()
    labels[:, 2] = 1.0 - labels[:, 2]
    return cv2.flip(img, 0), labels


def mosaic_centre(rng: np.random.Generator, img_size: int) -> tuple[int, int]:
    """Random mosaic centre (x, y) in the middle half of the 2*img_size canvas, as YOLOv5 draws it."""
    xc, yc = rng.uniform(img_size / 2, 3 * img_size / 2, size=2)
    return int(math.floor(xc)), int(math.floor(yc))
