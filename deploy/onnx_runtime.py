"""Detection with an exported ONNX file: letterbox, run in onnxruntime, NMS, original coordinates.

The pre- and post-processing here (`prepare_batch`, `postprocess`) are engine-agnostic: the
TensorRT wrapper uses them too, so both runtimes see identical inputs and decode identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from deploy.onnx_export import INPUT_NAME, OUTPUT_NAME
from yolo.augment import letterbox
from yolo.boxes import clip_boxes, non_max_suppression

ImageSource = str | Path | np.ndarray  # a file, or a BGR uint8 array as cv2.imread returns it


@dataclass(frozen=True)
class Letterboxed:
    """How one original image was placed in the network input: x_input = x * gain + pad."""

    original_shape: tuple[int, int]  # (height, width)
    gain: tuple[float, float]  # (gain_w, gain_h): the real per-axis scale after rounding
    pad: tuple[float, float]  # (pad_w, pad_h): pixels added left / top

    def to_original(self, detections: torch.Tensor) -> torch.Tensor:
        """[n, 6] xyxy in input pixels -> a new tensor with xyxy in original pixels, clipped."""
        out = detections.clone()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad[0]) / self.gain[0]
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad[1]) / self.gain[1]
        return clip_boxes(out, self.original_shape)


def read_image(source: ImageSource) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    image = cv2.imread(str(source))
    if image is None:
        raise OSError(f"cannot read image {source}")
    return image


def prepare_batch(images: Sequence[ImageSource], size: tuple[int, int]) -> tuple[np.ndarray, list[Letterboxed]]:
    """BGR images -> float32 [B, 3, H, W] RGB in 0-1 (the ONNX input contract) and their letterboxes.

    Letterboxing scales up as well as down (as YOLOv5's detect.py does), padding with grey 114."""
    arrays, placements = [], []
    for source in images:
        image = read_image(source)
        boxed, gain, pad = letterbox(image, size, auto=False, scaleup=True)
        arrays.append(boxed[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        placements.append(Letterboxed(image.shape[:2], gain, pad))
    batch = np.ascontiguousarray(np.stack(arrays)).astype(np.float32) / 255.0
    return batch, placements


def postprocess(
    output: np.ndarray | torch.Tensor,
    placements: Sequence[Letterboxed],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 300,
) -> list[torch.Tensor]:
    """Decoded output [B, N, 5+nc] -> per image [n, 6] (x1, y1, x2, y2, conf, class), original pixels.

    One label per box (the best class), as deployment wants; validation uses multi-label."""
    prediction = torch.as_tensor(output).float().cpu()
    kept = non_max_suppression(prediction[: len(placements)], conf_threshold, iou_threshold, max_det,
                               multi_label=False)
    return [place.to_original(det) for det, place in zip(kept, placements)]


def _chunks(items: Sequence[ImageSource], size: int) -> Iterator[Sequence[ImageSource]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class OnnxDetector:
    """An exported detector in onnxruntime. `detect` takes image files or BGR arrays.

    A static file is fed its exact batch (a short last chunk is zero-padded); a dynamic one any
    batch, at `img_size` (default: the size it was exported at, from the file's metadata)."""

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        img_size: int | tuple[int, int] | None = None,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.names: list[str] = json.loads(meta["names"]) if "names" in meta else []
        shape = self.session.get_inputs()[0].shape  # ints, or strings for symbolic axes
        self.batch: int | None = shape[0] if isinstance(shape[0], int) else None
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            fixed = (shape[2], shape[3])
            if img_size is not None and _as_hw(img_size) != fixed:
                raise ValueError(f"{self.path} is fixed at {fixed}; cannot run at {img_size}")
            self.img_size = fixed
        else:
            exported = tuple(json.loads(meta.get("img_size", "[640, 640]")))
            self.img_size = _as_hw(img_size) if img_size is not None else (int(exported[0]), int(exported[1]))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on a prepared float32 batch of any length; returns `output0`.

        A static graph gets its own batch size at a time, the last chunk zero-padded."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.batch is None or batch.shape[0] == self.batch:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        outputs = []
        for start in range(0, batch.shape[0], self.batch):
            chunk = batch[start : start + self.batch]
            padded = np.zeros((self.batch, *batch.shape[1:]), dtype=np.float32)
            padded[: len(chunk)] = chunk
            outputs.append(self.session.run([OUTPUT_NAME], {INPUT_NAME: padded})[0][: len(chunk)])
        return np.concatenate(outputs)

    def detect(
        self,
        images: Sequence[ImageSource],
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_det: int = 300,
    ) -> list[torch.Tensor]:
        """Per image [n, 6]: x1, y1, x2, y2 in the original image's pixels, confidence, class."""
        results: list[torch.Tensor] = []
        for chunk in _chunks(list(images), self.batch or len(images) or 1):
            batch, placements = prepare_batch(chunk, self.img_size)
            results += postprocess(self(batch), placements, conf_threshold, iou_threshold, max_det)
        return results


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))
