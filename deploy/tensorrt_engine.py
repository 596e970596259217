"""A serialized TensorRT engine built from our ONNX file, and a runtime wrapper around it.

Written against the TensorRT >= 10 Python API (FIELD-NOTES): `build_serialized_network`
instead of the removed `build_engine`, `set_memory_pool_limit(WORKSPACE)` instead of
`max_workspace_size`, and named I/O tensors (`set_tensor_address` + `execute_async_v3`) instead
of the binding-index API. FP16: TensorRT 10 still takes `BuilderFlag.FP16`; TensorRT 11 removed
it, so there FP16 must already be in the ONNX graph (`export --half`) and the network is built
strongly typed, keeping the graph's own types. I/O buffers are torch CUDA tensors, so the wrapper
needs no pycuda / cuda-python.

`tensorrt` is an optional extra (it needs an NVIDIA GPU and NVIDIA's index to install), so it is
imported only inside the functions here; importing this module never fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from deploy.onnx_export import INPUT_NAME, OUTPUT_NAME
from deploy.onnx_runtime import ImageSource, prepare_batch, postprocess

SKIP_REASON = "TensorRT needs an NVIDIA GPU and the tensorrt package (not installable on this CPU machine)"


def import_tensorrt() -> Any:
    """The `tensorrt` module, or a RuntimeError that says how to get it."""
    try:
        import tensorrt
    except ImportError as err:
        raise RuntimeError(f"{SKIP_REASON}: install the `tensorrt` extra on a machine with CUDA ({err})") from None
    return tensorrt


def tensorrt_available() -> bool:
    """True when an engine can be built and run here: the package imports and CUDA is up."""
    try:
        import_tensorrt()
    except RuntimeError:
        return False
    return torch.cuda.is_available()


def _major_version(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


@dataclass(frozen=True)
class EngineOptions:
    workspace_gib: float = 4.0  # builder scratch memory (memory-pool limit)
    half: bool = False  # ask for FP16 layers (see the module docstring for TensorRT 11)
    max_batch: int = 1  # top of the optimisation profile for a dynamic-batch ONNX
    img_size: tuple[int, int] | None = None  # (h, w) for a dynamic-size ONNX; default: its export size
    tf32: bool = True  # TensorRT's default on Ampere+; off for bit-close parity checks against FP32 runtimes


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: EngineOptions = EngineOptions()) -> Path:
    """Parse the ONNX, build and serialize an engine for the current GPU; returns `engine_path`.

    A dynamic ONNX gets one optimisation profile: batch 1..max_batch (optimised for the middle)
    at one image size, as YOLOv5's consumers run it."""
    trt = import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    graph_is_half = _onnx_metadata(onnx_path).get("half") is True
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    creation = trt.NetworkDefinitionCreationFlag
    flags = 0
    if _major_version(trt) < 10 and hasattr(creation, "EXPLICIT_BATCH"):
        flags |= 1 << int(creation.EXPLICIT_BATCH)  # implicit in >= 10 (and the flag deprecated)
    fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
    strongly_typed = hasattr(creation, "STRONGLY_TYPED") and (graph_is_half or (options.half and fp16_flag is None))
    if options.half and fp16_flag is None and not graph_is_half:
        raise ValueError(f"TensorRT {trt.__version__} has no FP16 builder flag: FP16 must come from the ONNX graph; "
                         f"re-export {onnx_path.name} with half=True")
    if strongly_typed:
        flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    images = next(network.get_input(i) for i in range(network.num_inputs) if network.get_input(i).name == INPUT_NAME)
    shape = tuple(images.shape)
    if any(d < 0 for d in shape):
        profile = builder.create_optimization_profile()
        exported = _onnx_metadata(onnx_path).get("img_size", [640, 640])
        height, width = options.img_size or (shape[2] if shape[2] > 0 else exported[0],
                                             shape[3] if shape[3] > 0 else exported[1])
        top = max(1, options.max_batch)
        profile.set_shape(INPUT_NAME, (1, 3, height, width), (max(1, top // 2), 3, height, width), (top, 3, height, width))
        config.add_optimization_profile(profile)
    if not options.tf32 and hasattr(trt.BuilderFlag, "TF32") and not strongly_typed:
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.half and fp16_flag is not None and not strongly_typed:
        if getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(fp16_flag)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    return engine_path


def _onnx_metadata(path: Path) -> dict[str, Any]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    values: dict[str, Any] = {}
    for prop in graph.metadata_props:
        try:
            values[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            values[prop.key] = prop.value
    return values


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dtype]


class TensorRTDetector:
    """Runs a serialized engine on one GPU with torch CUDA tensors as I/O buffers."""

    def __init__(self, engine_path: str | Path, device: str | torch.device = "cuda:0",
                 img_size: tuple[int, int] | None = None):
        trt = import_tensorrt()
        self.device = torch.device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self.device):
            self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
            if self.engine is None:
                raise RuntimeError(f"{engine_path} is not an engine for this TensorRT / GPU")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if set(names) != {INPUT_NAME, OUTPUT_NAME}:
            raise RuntimeError(f"{engine_path}: expected tensors {INPUT_NAME!r} and {OUTPUT_NAME!r}, got {names}")
        self._dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        self.batch: int | None = shape[0] if shape[0] > 0 else None
        self.max_batch = shape[0]
        if any(d < 0 for d in shape):  # dynamic: the profile (built for one size) bounds the input
            _, _, top = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
            self.max_batch = int(top[0])
            shape = (shape[0], shape[1], int(top[2]), int(top[3]))
        self.img_size = img_size or (int(shape[2]), int(shape[3]))

    def __call__(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """float32 [B, 3, H, W] in 0-1 -> `output0` as a CUDA tensor (synchronised)."""
        images = torch.as_tensor(batch).to(self.device, self._dtypes[INPUT_NAME]).contiguous()
        if self.batch is not None and images.shape[0] != self.batch:
            padded = images.new_zeros((self.batch, *images.shape[1:]))
            padded[: images.shape[0]] = images
            return self(padded)[: images.shape[0]]
        self.context.set_input_shape(INPUT_NAME, tuple(images.shape))
        output = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self._dtypes[OUTPUT_NAME],
                             device=self.device)
        self.context.set_tensor_address(INPUT_NAME, images.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return output

    def detect(self, images: Sequence[ImageSource], conf_threshold: float = 0.25, iou_threshold: float = 0.45,
               max_det: int = 300) -> list[torch.Tensor]:
        """Same contract as `OnnxDetector.detect`: per image [n, 6] in original pixels."""
        results: list[torch.Tensor] = []
        step = self.max_batch
        for start in range(0, len(images), step):
            batch, placements = prepare_batch(images[start : start + step], self.img_size)
            results += postprocess(self(batch), placements, conf_threshold, iou_threshold, max_det)
        return results
