"""The library calls behind `evolver export` and the campaign's auto-export of its winner.

Both take and return plain paths and frozen dataclasses, so a Ray task can run them on a worker
(the one with the GPU, for an engine) and send the result back to the coordinator to record.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from deploy.formats import FORMATS, SUFFIXES, parse_formats  # noqa: F401  (FORMATS, parse_formats: re-exported)
from deploy.onnx_export import OnnxExportOptions, export_onnx
from deploy.onnx_runtime import ImageSource, OnnxDetector, postprocess, prepare_batch
from deploy.tensorrt_engine import SKIP_REASON, EngineOptions, build_engine, tensorrt_available
from deploy.wts import tensorrtx_tensors, write_wts


@dataclass(frozen=True)
class ExportedFile:
    """One artefact as the store records it."""

    path: Path
    format: str  # one of FORMATS
    size: int  # bytes
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path, fmt: str) -> ExportedFile:
    return ExportedFile(path=path, format=fmt, size=path.stat().st_size, sha256=file_sha256(path))


def export_weights(
    weights: str | Path,
    formats: Sequence[str] = ("onnx",),
    img_size: int | tuple[int, int] = 640,
    batch: int = 1,
    dynamic: bool = False,
    half: bool = False,
    out_dir: str | Path | None = None,
    opset: int = 17,
    workspace_gib: float = 4.0,
) -> list[ExportedFile]:
    """Export an evolver checkpoint (`best.pt`) to the given formats; files are named `<stem>.<fmt>`.

    An engine is built from the ONNX, so asking for `engine` writes (and returns) the ONNX too.
    `engine` needs TensorRT and a GPU here: without them this raises before writing anything.
    `batch` is the static batch, or the top of the engine's profile when `dynamic`."""
    from yolo.checkpoint import load_model

    wanted = parse_formats(formats)
    if "engine" in wanted and not tensorrt_available():
        raise RuntimeError(f"cannot build a TensorRT engine here: {SKIP_REASON}")
    weights = Path(weights)
    out = Path(out_dir) if out_dir is not None else weights.parent
    out.mkdir(parents=True, exist_ok=True)
    model, checkpoint = load_model(weights, "cpu", fuse=False)
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    exported: list[ExportedFile] = []
    if "onnx" in wanted or "engine" in wanted:
        onnx_path = out / f"{weights.stem}.onnx"
        export_onnx(model, onnx_path, OnnxExportOptions(size, batch, dynamic, half, opset),
                    metadata={"names": checkpoint.names, "model": checkpoint.model_config.get("name", ""),
                              "source_sha256": file_sha256(weights)})
        exported.append(_describe(onnx_path, "onnx"))
        if "engine" in wanted:
            engine_path = build_engine(onnx_path, out / f"{weights.stem}.engine",
                                       EngineOptions(workspace_gib, half, batch, size))
            exported.append(_describe(engine_path, "engine"))
    if "wts" in wanted:
        exported.append(_describe(write_wts(tensorrtx_tensors(model), out / f"{weights.stem}.wts"), "wts"))
    return exported


@dataclass(frozen=True)
class ParityReport:
    """onnxruntime against the fused torch model on the same letterboxed images.

    The bound is absolute for scores (0-1) and relative for box coordinates, which are pixels:
    a float32 step is already 6e-5 at 640 and 1.2e-4 above 1024 px, so a plain 1e-4 on a box
    of 1400 px would ask for bit-identical kernels rather than a faithful export."""

    images: int
    max_abs_diff: float  # plain max |onnx - torch| over every element of output0
    max_scaled_diff: float  # max of |onnx - torch| / max(1, |torch|): what `atol` bounds
    atol: float
    torch_detections: int
    onnx_detections: int
    mismatched_images: tuple[int, ...] = field(default_factory=tuple)  # indices whose detections differ
    half: bool = False  # an FP16 graph: differing detections are reported, not failed

    @property
    def detections_match(self) -> bool:
        return not self.mismatched_images

    @property
    def passed(self) -> bool:
        return self.max_scaled_diff <= self.atol and (self.detections_match or self.half)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"parity {verdict}: {self.images} images, max |diff| {self.max_abs_diff:.2e}, "
                f"scaled {self.max_scaled_diff:.2e} (limit {self.atol:.0e}), "
                f"detections torch {self.torch_detections} / onnx {self.onnx_detections}, "
                f"{len(self.mismatched_images)} image(s) differ")


def detections_equal(a: torch.Tensor, b: torch.Tensor, box_rtol: float = 1e-4, conf_atol: float = 1e-4) -> bool:
    """Same boxes in the same order with the same classes; coordinates equal to `box_rtol` of
    their size in pixels (plus 1e-3 px), scores to `conf_atol`."""
    if a.shape != b.shape:
        return False
    return bool(torch.equal(a[:, 5], b[:, 5]) and torch.allclose(a[:, :4], b[:, :4], rtol=box_rtol, atol=1e-3)
                and torch.allclose(a[:, 4], b[:, 4], rtol=0, atol=conf_atol))


def check_parity(
    onnx_path: str | Path,
    weights: str | Path,
    images: Sequence[ImageSource],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    atol: float | None = None,
) -> ParityReport:
    """Run both on `images` (files or BGR arrays) at the ONNX's size and batch; compare.

    `atol` bounds |diff| / max(1, |torch|) (see ParityReport) and defaults to 1e-4 for a float32
    graph. An FP16 graph cannot meet that (a half-precision step is 1e-3 relative), so there it
    defaults to 1e-2 and, as FP16 may reorder near-equal scores, detections are only reported."""
    from yolo.checkpoint import load_model

    if not images:
        raise ValueError("check_parity needs at least one image")
    model, _ = load_model(weights, "cpu", fuse=True)
    detector = OnnxDetector(onnx_path)
    half = "true" == detector.session.get_modelmeta().custom_metadata_map.get("half", "false")
    limit = atol if atol is not None else (1e-2 if half else 1e-4)
    step = detector.batch or len(images)
    worst, worst_scaled, counts, mismatched = 0.0, 0.0, [0, 0], []
    for start in range(0, len(images), step):
        batch, placements = prepare_batch(images[start : start + step], detector.img_size)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch))[0]
        got = torch.from_numpy(detector(batch))
        diff = (got - expected).abs()
        worst = max(worst, float(diff.max()))
        worst_scaled = max(worst_scaled, float((diff / expected.abs().clamp(min=1.0)).max()))
        ours = postprocess(expected, placements, conf_threshold, iou_threshold)
        theirs = postprocess(got, placements, conf_threshold, iou_threshold)
        for offset, (a, b) in enumerate(zip(ours, theirs)):
            counts[0] += len(a)
            counts[1] += len(b)
            if not detections_equal(a, b):
                mismatched.append(start + offset)
    return ParityReport(len(images), worst, worst_scaled, limit, counts[0], counts[1], tuple(mismatched), half)


def coco_like_images(folder: str | Path, limit: int) -> list[Path]:
    """The first `limit` images (sorted) of a folder tree: the parity set of the CLI and benchmark."""
    suffixes = {".jpg", ".jpeg", ".png", ".bmp"}
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes)[:limit]

