"""Reading a `torch.save` zip archive whose pickle names foreign classes, without running it.

A YOLOv5 `.pt` is a zip: `<root>/data.pkl` (a pickle of the checkpoint dict, with YOLOv5's
module objects inside) and one `<root>/data/<key>` record per tensor storage. `pickle.load` on it
would import and call whatever the pickle names, so a hostile file runs code. Here the pickle is
read by an unpickler whose `find_class` answers from a fixed table:

- module classes (YOLOv5's and the torch.nn ones it contains) become `PickledObject` records:
  inert, they only keep the state the pickle hands them;
- tensors are rebuilt over the archive's own storage records only after their layout passes
  `yolo.checkpoint_limits` (sizes, strides and offset within the storage, element and byte
  bounds); a storage is read once, with a capped read, when the first tensor over it passes. A
  refused tensor is named by its path in the checkpoint (`model.model.0.conv.weight`);
- a few plain builtins (OrderedDict, set, paths as strings, numpy scalars) are allowed as is;
- any other global is refused with an `UnsafeCheckpointError` naming it and the file.

The table is the whole trust boundary: nothing outside it is imported or called. Every failure,
a damaged zip or pickle included, is an `UnsafeCheckpointError` naming the file.
"""

from __future__ import annotations

import _codecs
import collections
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from yolo.checkpoint_limits import (
    MAX_PICKLE_BYTES,
    ElementTally,
    TensorLayout,
    UnsafeCheckpointError,
    check_declared_sizes,
    read_record,
    read_small_record,
)

__all__ = ["PickledObject", "UnsafeCheckpointError", "load_restricted", "objects_with_paths"]


@dataclass
class PickledObject:
    """What a pickled object of an allowed class becomes: its class's name and its state."""

    qualname: str  # "models.yolo.Detect", "torch.nn.modules.conv.Conv2d", ...
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


def _record_class(qualname: str) -> type:
    """A class standing in for `qualname`: pickle's NEWOBJ makes one, BUILD fills its state."""

    def new(cls: type, *args: Any, **kwargs: Any) -> PickledObject:
        if args or kwargs:
            raise UnsafeCheckpointError(f"{qualname} is constructed with arguments; module objects never are")
        return PickledObject(qualname)

    return type(qualname.rsplit(".", 1)[-1], (), {"__new__": new, "__module__": "yolo.safe_unpickle.records"})


def _set_state(record: PickledObject, state: Any) -> None:
    if isinstance(state, tuple) and len(state) == 2 and state[1] is None:  # (dict, slots) form
        state = state[0]
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{record.qualname}'s state is a {type(state).__name__}, not a dict")
    record.state.update(state)


PickledObject.__setstate__ = _set_state  # type: ignore[attr-defined]  # pickle's BUILD calls it


# Module classes a YOLOv5 v6.0+ detection checkpoint holds (v6.x release files say `Model`,
# later ones `DetectionModel`). They only ever become records.
MODULE_CLASSES = frozenset({
    "models.yolo.DetectionModel", "models.yolo.Model", "models.yolo.Detect",
    "models.common.Conv", "models.common.C3", "models.common.Bottleneck", "models.common.SPPF",
    "models.common.Concat",
    "torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.conv.Conv2d", "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.SiLU", "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.Upsample",
})
_RECORD_CLASSES = {qualname: _record_class(qualname) for qualname in MODULE_CLASSES}

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "torch.HalfStorage": torch.float16, "torch.FloatStorage": torch.float32,
    "torch.DoubleStorage": torch.float64, "torch.BFloat16Storage": torch.bfloat16,
    "torch.LongStorage": torch.int64, "torch.IntStorage": torch.int32, "torch.BoolStorage": torch.bool,
}

_NUMPY_DTYPES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """numpy.dtype, for the plain numeric codes only (what YOLOv5 stores: float64 fitness)."""
    if not isinstance(name, str) or name not in _NUMPY_DTYPES:
        raise UnsafeCheckpointError(f"numpy dtype {name!r} is not a plain numeric type")
    return np.dtype(name)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy.core.multiarray.scalar: a number from its dtype and raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub" or not isinstance(data, bytes):
        raise UnsafeCheckpointError("a numpy scalar in the file is not a plain number")
    if len(data) != dtype.itemsize:
        raise UnsafeCheckpointError("a numpy scalar in the file has the wrong number of bytes")
    return np.frombuffer(data, dtype=dtype)[0]


def _path_as_text(*parts: Any) -> str:
    """pathlib.PosixPath / WindowsPath: kept as text (a path in a checkpoint is information only)."""
    if not all(isinstance(p, str) for p in parts):
        raise UnsafeCheckpointError("a path in the file is not made of strings")
    return "/".join(parts)


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """How protocol-2 pickles carry bytes (numpy scalars' data): str -> bytes, latin1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafeCheckpointError("_codecs.encode is allowed only for latin1 byte strings")
    return _codecs.encode(text, encoding)


PLAIN_GLOBALS: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set, "__builtin__.set": set,
    "pathlib.PosixPath": _path_as_text, "pathlib.WindowsPath": _path_as_text,
    "_codecs.encode": _codecs_encode,
    "numpy.dtype": _numpy_dtype,
    "numpy.core.multiarray.scalar": _numpy_scalar, "numpy._core.multiarray.scalar": _numpy_scalar,
}
# torch._utils._rebuild_tensor_v2 and _rebuild_parameter are allowed too, but answered by the archive
# being read (`_Archive.rebuild_tensor` / `rebuild_parameter`): its storages, its checks.

# Explanations for globals that are refused because of what they mean, not just refused.
REFUSAL_HINTS: dict[str, str] = {
    "models.common.Focus": "YOLOv5 before v6.0 (Focus stem) is not supported; "
                           "retrain or re-export it with YOLOv5 v6.0 or later",
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: "_Archive"):
        super().__init__(io.BytesIO(data))
        self._archive = archive

    def find_class(self, module: str, name: str) -> Any:
        # The `yolov5` pip package (`pip install yolov5`) saves YOLOv5's own classes under its
        # package name: `yolov5.models.yolo.DetectionModel` is `models.yolo.DetectionModel`.
        qualname = f"{module}.{name}".removeprefix("yolov5.")
        if qualname in _RECORD_CLASSES:
            return _RECORD_CLASSES[qualname]
        if qualname in STORAGE_DTYPES:
            return STORAGE_DTYPES[qualname]  # only ever used as the storage's type in a persistent id
        if qualname in PLAIN_GLOBALS:
            return PLAIN_GLOBALS[qualname]
        if qualname == "torch._utils._rebuild_tensor_v2":
            return self._archive.rebuild_tensor
        if qualname == "torch._utils._rebuild_parameter":
            return self._archive.rebuild_parameter
        hint = REFUSAL_HINTS.get(qualname, "it is not among the globals a YOLOv5 v6+ detection checkpoint uses")
        raise UnsafeCheckpointError(f"{self._archive.source}: refusing to load global {qualname!r}: {hint}")

    def persistent_load(self, pid: Any) -> Any:
        return self._archive.storage_ref(pid)


@dataclass(frozen=True)
class _StorageRef:
    """A storage record as the pickle names it; nothing is read until a tensor over it passes."""

    key: str
    dtype: torch.dtype
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True, eq=False)
class _RefusedTensor:
    """Stands where a refused tensor would be, so that the error can name its path once the
    pickle is read. Nothing is allocated for it."""

    reason: str
    storage_key: str | None = None


class _Archive:
    """The storage records of one torch zip archive, and the tensors built over them."""

    def __init__(self, zf: zipfile.ZipFile, root: str, source: str):
        self.zf, self.root, self.source = zf, root, source
        self._claims: dict[str, _StorageRef] = {}
        self._storages: dict[str, torch.UntypedStorage] = {}
        self._elements = ElementTally()  # of every tensor built so far
        self.refused: _RefusedTensor | None = None  # the first refused tensor

    def storage_ref(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if (not isinstance(dtype, torch.dtype) or not isinstance(key, str) or not isinstance(numel, int)
                or isinstance(numel, bool) or numel < 0):
            raise UnsafeCheckpointError(f"{self.source}: malformed storage reference {pid!r:.80}")
        ref = _StorageRef(key, dtype, numel)
        known = self._claims.setdefault(key, ref)
        if known != ref:
            raise UnsafeCheckpointError(f"{self.source}: storage {key!r:.40} is named as {known.numel} x {known.dtype} "
                                        f"and as {numel} x {dtype}")
        try:
            info = self.zf.getinfo(self._record_name(key))
        except KeyError:
            raise UnsafeCheckpointError(f"{self.source}: storage {key!r:.40} is missing from the archive") from None
        if ref.nbytes > info.file_size:
            raise UnsafeCheckpointError(
                f"{self.source}: storage {key!r:.40} claims {ref.nbytes} bytes but the file holds {info.file_size}")
        return ref

    def rebuild_tensor(self, storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, metadata: Any = None) -> torch.Tensor | _RefusedTensor:
        """torch._utils._rebuild_tensor_v2, checked: a tensor only over a storage that holds it."""
        if not isinstance(storage, _StorageRef):
            return self._refuse(f"built over a {type(storage).__name__}, not a storage of the archive")
        try:
            layout = TensorLayout.from_pickle(storage_offset, size, stride)
        except UnsafeCheckpointError as err:
            return self._refuse(str(err), storage.key)
        problem = (layout.problem(storage.numel) or _flags_problem(storage.dtype, requires_grad, backward_hooks)
                   or (f"metadata {metadata!r:.60} (only plain tensors are read)" if metadata else None)
                   or self._elements.add(layout.numel))
        if problem is not None:
            return self._refuse(problem, storage.key)
        if self.refused is not None:
            return _RefusedTensor("not built: an earlier tensor was refused")  # read nothing more
        tensor = torch.empty((0,), dtype=storage.dtype)
        tensor.set_(self._storage(storage), layout.storage_offset, layout.size, layout.stride)
        tensor.requires_grad = requires_grad
        return tensor

    def rebuild_parameter(self, data: Any, requires_grad: Any, backward_hooks: Any) -> Any:
        """torch._utils._rebuild_parameter, checked: a parameter only around a tensor built here."""
        if isinstance(data, _RefusedTensor):
            return data
        if not isinstance(data, torch.Tensor):
            return self._refuse(f"a parameter around a {type(data).__name__}, not a tensor")
        problem = _flags_problem(data.dtype, requires_grad, backward_hooks)
        if problem is not None:
            return self._refuse(f"parameter: {problem}")
        return torch.nn.Parameter(data, requires_grad)

    def raise_if_refused(self, payload: Any) -> None:
        """The first refused tensor, named by its path in the checkpoint when it is reachable."""
        if self.refused is None:
            return
        where = next((path for path, value in objects_with_paths(payload) if value is self.refused), None)
        label = f"tensor {where:.200}" if where else "a tensor"
        if self.refused.storage_key is not None:
            label += f" (storage {self.refused.storage_key!r:.40})"
        raise UnsafeCheckpointError(f"{self.source}: {label}: {self.refused.reason}")

    def _refuse(self, reason: str, storage_key: str | None = None) -> _RefusedTensor:
        refused = _RefusedTensor(reason, storage_key)
        if self.refused is None:
            self.refused = refused
        return refused

    def _record_name(self, key: str) -> str:
        return f"{self.root}/data/{key}"

    def _storage(self, ref: _StorageRef) -> torch.UntypedStorage:
        """The storage's bytes, read once (tensors over it share them), capped at its claim."""
        if ref.key not in self._storages:
            raw = read_record(self.zf, self._record_name(ref.key), ref.nbytes, self.source)
            # The tensor shares the bytearray's memory (and keeps it alive): one copy, as torch.load makes.
            self._storages[ref.key] = (torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw
                                       else torch.UntypedStorage(0))
        return self._storages[ref.key]


def _flags_problem(dtype: torch.dtype, requires_grad: Any, backward_hooks: Any) -> str | None:
    if not isinstance(requires_grad, bool):
        return f"requires_grad is {requires_grad!r:.40}, not a bool"
    if requires_grad and not (dtype.is_floating_point or dtype.is_complex):
        return f"requires_grad on a {dtype} tensor"
    if not isinstance(backward_hooks, dict) or backward_hooks:
        return "backward hooks are stored with it (only an empty dict is accepted)"
    return None


_MODULE_SLOTS = frozenset({"_modules", "_parameters", "_buffers"})  # left out of paths, as state_dict() does


def objects_with_paths(root: Any) -> Iterator[tuple[str, Any]]:
    """Every object reachable from an unpickled checkpoint, once, with the first path that reaches
    it: dict keys and list indices joined by dots, a module record's `_modules` / `_parameters` /
    `_buffers` left out (`model.model.0.conv.weight`). Iterative: any depth, cycles, shared objects."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:
        path, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield path, value
        children: list[tuple[str, Any]] = []
        if isinstance(value, PickledObject):
            for key, item in value.state.items():
                if key in _MODULE_SLOTS and isinstance(item, dict):
                    children.extend((_join(path, k), v) for k, v in item.items())
                else:
                    children.append((_join(path, key), item))
        elif isinstance(value, dict):
            children = [(_join(path, k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(_join(path, i), v) for i, v in enumerate(value)]
        elif isinstance(value, (set, frozenset)):
            children = [(_join(path, "*"), v) for v in value]
        stack.extend(reversed(children))


_MAX_PATH_CHARS = 300


def _join(path: str, key: Any) -> str:
    """A path one key longer, kept short whatever the file's keys are (paths only name things)."""
    key = key[:_MAX_PATH_CHARS] if isinstance(key, str) else key if isinstance(key, int) else f"<{type(key).__name__}>"
    return (f"{path}.{key}" if path else str(key))[:_MAX_PATH_CHARS]


def load_restricted(path: str | Path) -> Any:
    """Unpickle a torch zip checkpoint with the allowlist above; returns plain Python objects,
    tensors and `PickledObject` records. Raises `UnsafeCheckpointError` for anything else."""
    path = Path(path)
    source = str(path)
    try:
        if not zipfile.is_zipfile(path):
            raise UnsafeCheckpointError(f"{source}: not a torch zip archive (truncated, damaged, or saved by "
                                        f"torch < 1.6, which is not supported)")
        with zipfile.ZipFile(path) as zf:
            check_declared_sizes(zf, source)
            names = set(zf.namelist())
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise UnsafeCheckpointError(f"{source}: expected one <name>/data.pkl in the archive, found {len(pickles)}")
            root = pickles[0].split("/", 1)[0]
            byteorder = f"{root}/byteorder"
            if byteorder in names and read_small_record(zf, byteorder, 16, source).strip() != b"little":
                raise UnsafeCheckpointError(f"{source}: big-endian checkpoints are not supported")
            archive = _Archive(zf, root, source)
            unpickler = _RestrictedUnpickler(read_small_record(zf, pickles[0], MAX_PICKLE_BYTES, source), archive)
            try:
                payload = unpickler.load()
            except Exception:
                archive.raise_if_refused(None)  # a refused tensor is the better reason
                raise
            archive.raise_if_refused(payload)
            return payload
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # zipfile's, pickle's, torch's, RecursionError, MemoryError: all the file's doing
        raise UnsafeCheckpointError(f"{source}: damaged or unreadable checkpoint ({type(err).__name__}: {err})") from None
