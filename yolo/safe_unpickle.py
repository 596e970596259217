"""Reading a `torch.save` zip archive whose pickle names foreign classes, without running it.

A YOLOv5 `.pt` is a zip: `<root>/data.pkl` (a pickle of the checkpoint dict, with YOLOv5's
module objects inside) and one `<root>/data/<key>` record per tensor storage. `pickle.load` on it
would import and call whatever the pickle names, so a hostile file runs code. Here the pickle is
read by an unpickler whose `find_class` answers from a fixed table:

- module classes (YOLOv5's and the torch.nn ones it contains) become `PickledObject` records:
  inert, they only keep the state the pickle hands them;
- storages are read from the archive's own records, sizes checked against what the pickle
  claims, and tensors are rebuilt by torch's own rebuild functions;
- a few plain builtins (OrderedDict, set, paths as strings, numpy scalars) are allowed as is;
- any other global is refused with an `UnsafeCheckpointError` naming it and the file.

The table is the whole trust boundary: nothing outside it is imported or called.
"""

from __future__ import annotations

import _codecs
import collections
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


class UnsafeCheckpointError(ValueError):
    """The file names something the safe reader will not construct, or is damaged."""


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
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
}

# Explanations for globals that are refused because of what they mean, not just refused.
REFUSAL_HINTS: dict[str, str] = {
    "models.common.Focus": "YOLOv5 before v6.0 (Focus stem) is not supported; "
                           "retrain or re-export it with YOLOv5 v6.0 or later",
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages: Callable[[Any], Any], source: str):
        super().__init__(io.BytesIO(data))
        self._storages = storages
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        if qualname in _RECORD_CLASSES:
            return _RECORD_CLASSES[qualname]
        if qualname in STORAGE_DTYPES:
            return STORAGE_DTYPES[qualname]  # only ever used as the storage's type in a persistent id
        if qualname in PLAIN_GLOBALS:
            return PLAIN_GLOBALS[qualname]
        hint = REFUSAL_HINTS.get(qualname, "it is not among the globals a YOLOv5 v6+ detection checkpoint uses")
        raise UnsafeCheckpointError(f"{self._source}: refusing to load global {qualname!r}: {hint}")

    def persistent_load(self, pid: Any) -> Any:
        return self._storages(pid)


@dataclass(frozen=True)
class _Archive:
    """The storage records of one torch zip archive."""

    zf: zipfile.ZipFile
    root: str
    source: str

    def storage(self, pid: Any) -> torch.storage.TypedStorage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise UnsafeCheckpointError(f"{self.source}: malformed storage reference {pid!r:.80}")
        name = f"{self.root}/data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise UnsafeCheckpointError(f"{self.source}: storage {key!r} is missing from the archive") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize > info.file_size:
            raise UnsafeCheckpointError(
                f"{self.source}: storage {key!r} claims {numel * itemsize} bytes but the file holds {info.file_size}")
        raw = bytearray(self.zf.read(name))  # a damaged record raises zipfile's CRC error here
        # The tensor shares the bytearray's memory (and keeps it alive): one copy, as torch.load makes.
        untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def load_restricted(path: str | Path) -> Any:
    """Unpickle a torch zip checkpoint with the allowlist above; returns plain Python objects,
    tensors and `PickledObject` records. Raises `UnsafeCheckpointError` for anything else."""
    path = Path(path)
    source = str(path)
    if not zipfile.is_zipfile(path):
        raise UnsafeCheckpointError(
            f"{source}: not a torch zip archive (truncated, damaged, or saved by torch < 1.6, which is not supported)")
    try:
        with zipfile.ZipFile(path) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise UnsafeCheckpointError(f"{source}: expected one <name>/data.pkl in the archive, found {len(pickles)}")
            root = pickles[0].split("/", 1)[0]
            byteorder = f"{root}/byteorder"
            if byteorder in zf.namelist() and zf.read(byteorder).strip() != b"little":
                raise UnsafeCheckpointError(f"{source}: big-endian checkpoints are not supported")
            archive = _Archive(zf, root, source)
            return _RestrictedUnpickler(zf.read(pickles[0]), archive.storage, source).load()
    except UnsafeCheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, RuntimeError, ValueError, TypeError,
            KeyError, IndexError, AttributeError, OSError) as err:
        raise UnsafeCheckpointError(f"{source}: damaged or unreadable checkpoint ({type(err).__name__}: {err})") from None
