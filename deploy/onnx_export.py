"""A trained detector -> one ONNX file in the layout YOLOv5's consumers expect.

Graph contract: input `images` [B, 3, H, W] float32 RGB in 0-1, output `output0` [B, N, 5 + nc]
(xywh in input pixels, objectness, class probabilities; NMS is left to the consumer). Static
shapes unless `dynamic`, then batch, height and width are named symbolic axes.

We use the TorchScript-based exporter (`dynamo=False`), not torch 2.x's default dynamo exporter:
it honours the requested opset (12-17: what older onnxruntime builds and TensorRT 8.6+/10 parse;
the dynamo exporter silently returns opset 18+), it gives real named dynamic axes from
`dynamic_axes` without `Dim` constraints on H and W, and its graph for our Detect head is plain
Conv/Sigmoid/Mul/Concat plus a Shape->Range grid — no ScatterND, no grid constant — because
`yolo.layers.Detect` builds its grid from the live feature size and writes outputs with split/cat.
Every export is checked afterwards (`inspect_onnx`) rather than trusted.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

INPUT_NAME = "images"
OUTPUT_NAME = "output0"
DEFAULT_OPSET = 17
MAX_SINGLE_FILE_BYTES = 2 * 1024**3  # protobuf's limit: above it ONNX needs external data
# Ops that must not appear: ScatterND comes from in-place slice writes and broke TensorRT
# for years; the others mean a training-only or Python-side construct leaked into the graph.
FORBIDDEN_OPS = frozenset({"ScatterND", "ScatterElements", "BatchNormalization", "PythonOp"})


class ExportError(RuntimeError):
    """The exported graph breaks the contract above (wrong names, opset, forbidden ops...)."""


@dataclass(frozen=True)
class OnnxExportOptions:
    img_size: tuple[int, int] = (640, 640)  # (height, width) of the example input
    batch: int = 1
    dynamic: bool = False  # symbolic batch, height and width
    half: bool = False  # FP16 weights and compute inside; input and output stay float32
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        height, width = self.img_size
        if height % 32 or width % 32 or height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive multiples of 32 (the largest stride), got {self.img_size}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if not 12 <= self.opset <= 17:
            raise ValueError(f"opset {self.opset} unsupported: the TorchScript exporter writes 12-17")


@dataclass(frozen=True)
class OnnxGraphInfo:
    """What `inspect_onnx` read back from a file."""

    opset: int
    input_shape: tuple[int | str, ...]  # ints for fixed axes, names for symbolic ones
    output_shape: tuple[int | str, ...]
    op_counts: dict[str, int]
    metadata: dict[str, str]
    size_bytes: int

    @property
    def dynamic(self) -> bool:
        return any(isinstance(d, str) for d in self.input_shape)


class DecodedOutput(nn.Module):
    """Wraps an eval-mode Detector so the graph has exactly one output: the decoded predictions.

    With `half`, the cast to FP16 happens inside the graph, so the file keeps the float32 input
    contract while TensorRT >= 11 (strongly typed networks, no FP16 builder flag) still sees
    FP16 layers. The Detect layer (three 1x1 convs and the decode) stays float32."""

    def __init__(self, model: nn.Module, half: bool = False):
        super().__init__()
        self.model = model
        self.half = half

    def forward(self, images: Tensor) -> Tensor:
        x = images.half() if self.half else images
        return self.model(x)[0].float()


def export_onnx(
    model: nn.Module,
    path: str | Path,
    options: OnnxExportOptions = OnnxExportOptions(),
    metadata: Mapping[str, Any] | None = None,
) -> OnnxGraphInfo:
    """Export a (fused, eval) Detector copy to `path` and verify the result; returns its info.

    The caller's model is not changed: it is deep-copied, fused and put in eval mode here.
    A dynamic export traces with a batch of 2 so the tracer cannot specialise on batch 1.
    """
    import copy

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).float().eval()
    if hasattr(net, "fuse"):
        net.fuse()
    if options.half:
        net.half()
        if hasattr(net, "detect"):  # decode in float32: exact pixel grid, and the exporter's
            net.detect.float()  # arange symbolic cannot build a float16 range
            net.detect.register_forward_pre_hook(_features_to_float32)
    wrapper = DecodedOutput(net, options.half).eval()
    height, width = options.img_size
    batch = max(options.batch, 2) if options.dynamic else options.batch
    example = torch.rand(batch, 3, height, width)
    dynamic_axes = None
    if options.dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                        OUTPUT_NAME: {0: "batch", 1: "anchors"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer hints
        torch.onnx.export(
            wrapper, (example,), str(path), dynamo=False, opset_version=options.opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    graph = onnx.load(str(path))
    _pin_output_width(graph, int(net.nc) + 5 if hasattr(net, "nc") else None)
    _strip_identities(graph)
    meta = {"stride": 32, "img_size": [height, width], "batch": options.batch,
            "dynamic": options.dynamic, "half": options.half, **(metadata or {})}
    for key, value in meta.items():
        graph.metadata_props.add(key=str(key), value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(graph, str(path))  # well below 2 GB for every YOLOv5 size: one self-contained file
    return inspect_onnx(path, expected_opset=options.opset)


def _features_to_float32(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return ([feature.float() for feature in args[0]],)


def _pin_output_width(graph: Any, width: int | None) -> None:
    """The tracer names the last output axis symbolically (a Concat result); it is always 5 + nc."""
    if width is None:
        return
    dim = graph.graph.output[0].type.tensor_type.shape.dim[2]
    dim.Clear()
    dim.dim_value = width


def _strip_identities(graph: Any) -> None:
    """Drop the Identity nodes the tracer leaves for shared constants (rewire their consumers)."""
    nodes = graph.graph.node
    outputs = {o.name for o in graph.graph.output}
    rename: dict[str, str] = {}
    for node in list(nodes):
        if node.op_type == "Identity" and node.output[0] not in outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            nodes.remove(node)
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def _shape(value_info: Any) -> tuple[int | str, ...]:
    return tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in value_info.type.tensor_type.shape.dim)


def inspect_onnx(path: str | Path, expected_opset: int | None = None) -> OnnxGraphInfo:
    """Load, run `onnx.checker`, and enforce the graph contract; raises ExportError on a breach."""
    import onnx

    path = Path(path)
    size = path.stat().st_size
    if size >= MAX_SINGLE_FILE_BYTES:
        raise ExportError(f"{path} is {size} bytes: above protobuf's 2 GB single-file limit")
    graph = onnx.load(str(path), load_external_data=False)
    for tensor in graph.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ExportError(f"{path}: initializer {tensor.name} lives in an external data file")
    onnx.checker.check_model(graph)
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), -1)
    if expected_opset is not None and opset != expected_opset:
        raise ExportError(f"{path}: asked for opset {expected_opset}, the file declares {opset}")
    inputs = [i for i in graph.graph.input if i.name not in {t.name for t in graph.graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in graph.graph.output] != [OUTPUT_NAME]:
        raise ExportError(f"{path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, got "
                          f"{[i.name for i in inputs]} -> {[o.name for o in graph.graph.output]}")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ExportError(f"{path}: input {INPUT_NAME!r} must be float32")
    counts: dict[str, int] = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    forbidden = sorted(FORBIDDEN_OPS & counts.keys())
    if forbidden:
        raise ExportError(f"{path}: graph contains {', '.join(forbidden)}")
    return OnnxGraphInfo(
        opset=opset, input_shape=_shape(inputs[0]), output_shape=_shape(graph.graph.output[0]),
        op_counts=counts, metadata={p.key: p.value for p in graph.metadata_props}, size_bytes=size,
    )
