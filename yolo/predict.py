"""Prediction on images: detections in original-image pixels, annotated copies, YOLO txt files.

Each image is letterboxed to `img_size` on its long side and padded only up to the next stride
multiple (the smallest rectangle the grid tiles, as YOLOv5's detect does), run through the
detector (or ensemble, with or without TTA), suppressed with class-aware NMS, and mapped back
to the original pixels. Results go under `out_dir`: the annotated image with the source's file
name, and with `save_txt` `labels/<stem>.txt` holding one `class cx cy w h conf` line per box,
normalised to the original image, which is YOLO's label format plus a confidence column. An
image with no detection gets an empty txt file, so "ran, found nothing" differs from "not run".
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo.augment import letterbox
from yolo.boxes import non_max_suppression, scale_boxes
from yolo.data import IMAGE_SUFFIXES
from yolo.device import select_device
from yolo.ensemble import load_detector


@dataclass(frozen=True)
class Detection:
    cls: int
    name: str
    confidence: float
    xyxy: tuple[float, float, float, float]  # original-image pixels

    def xywhn(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Centre x, centre y, width, height normalised to the image (YOLO's label form)."""
        x1, y1, x2, y2 = self.xyxy
        return ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)


@dataclass(frozen=True)
class ImagePrediction:
    source: Path
    height: int
    width: int
    detections: list[Detection]
    annotated: Path | None  # the saved annotated image, if saved
    txt: Path | None  # the saved YOLO-format results, if saved


def list_images(source: str | Path) -> list[Path]:
    """An image file, or every image under a folder (recursively, sorted)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source}")
        return files
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"not an image file: {source}")
        return [source]
    raise FileNotFoundError(f"source not found: {source}")


def class_colour(cls: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per class (golden-ratio steps around the hue circle)."""
    r, g, b = colorsys.hsv_to_rgb((cls * 0.618034) % 1.0, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(img: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of the BGR image with a box and a `name conf` tag per detection."""
    out = img.copy()
    thickness = max(1, round(sum(img.shape[:2]) / 600))
    font_scale = max(0.35, thickness / 3)
    for det in detections:
        colour = class_colour(det.cls)
        x1, y1, x2, y2 = (round(v) for v in det.xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        label = f"{det.name} {det.confidence:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y1 - th - base if y1 - th - base >= 0 else y1  # inside the box at the top edge
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), colour, -1)
        cv2.putText(out, label, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def yolo_txt_lines(prediction: ImagePrediction) -> list[str]:
    """`class cx cy w h conf` per detection, normalised to the original image."""
    lines = []
    for det in prediction.detections:
        cx, cy, w, h = det.xywhn(prediction.width, prediction.height)
        lines.append(f"{det.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {det.confidence:.6f}")
    return lines


@torch.inference_mode()
def predict(
    weights: str | Path | Sequence[str | Path],
    source: str | Path,
    img_size: int = 640,
    conf: float = 0.25,
    iou: float = 0.45,
    augment: bool = False,
    save_txt: bool = False,
    out_dir: str | Path = "runs/predict/exp",
    *,
    max_det: int = 1000,
    device: str = "cpu",
    save_images: bool = True,
) -> list[ImagePrediction]:
    """Detect objects in `source` (an image or a folder) with one model or an ensemble."""
    device_ = select_device(device)
    model, checkpoints = load_detector(weights, device_, augment=augment)
    model.fuse()
    names = checkpoints[0].names
    stride = int(model.stride.max())
    out = Path(out_dir)
    if save_images or save_txt:
        out.mkdir(parents=True, exist_ok=True)
    if save_txt:
        (out / "labels").mkdir(exist_ok=True)
    results: list[ImagePrediction] = []
    for path in list_images(source):
        img = cv2.imread(str(path))
        if img is None:
            raise OSError(f"cannot read image {path}")
        height, width = img.shape[:2]
        boxed, (gain_w, gain_h), pads = letterbox(img, img_size, auto=True, stride=stride)
        tensor = torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)))
        tensor = tensor.to(device_).float().div_(255).unsqueeze(0)
        decoded, _ = model(tensor)
        det = non_max_suppression(decoded.float(), conf, iou, max_det, multi_label=False)[0].cpu()
        det[:, :4] = scale_boxes(tuple(boxed.shape[:2]), det[:, :4].clone(), (height, width),
                                 ((gain_h, gain_w), pads))
        detections = [
            Detection(cls=int(c), name=names[int(c)] if int(c) < len(names) else str(int(c)),
                      confidence=float(s), xyxy=(float(x1), float(y1), float(x2), float(y2)))
            for x1, y1, x2, y2, s, c in det.tolist()
        ]
        annotated = txt = None
        if save_images:
            annotated = out / path.name
            if not cv2.imwrite(str(annotated), draw_detections(img, detections)):
                raise OSError(f"cannot write {annotated}")
        prediction = ImagePrediction(path, height, width, detections, annotated, None)
        if save_txt:
            txt = out / "labels" / f"{path.stem}.txt"
            lines = yolo_txt_lines(prediction)
            txt.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            prediction = ImagePrediction(path, height, width, detections, annotated, txt)
        results.append(prediction)
    return results
