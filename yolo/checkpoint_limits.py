"""What a checkpoint file may claim before anything it describes is allocated.

A torch zip archive describes its tensors: each names a storage record, an offset, sizes and
strides. Nothing ties those claims to each other or to the file's length, so a few hundred bytes
can describe a 10^13-element tensor (stride 0 over a 2-byte storage) and a 2 MB file can hold a
record that inflates to gigabytes. These bounds are checked first; every figure is far above
what the largest YOLOv5 model needs (yolov5x: 86 M parameters, largest tensor 14.7 M elements,
a `last.pt` with EMA and optimizer state under 1 GB):

- MAX_RECORD_BYTES: one zip record unpacked (a tensor storage): 1 GiB;
- MAX_ARCHIVE_BYTES: all records of an archive unpacked, together: 2 GiB;
- MAX_INFLATION: how many times their packed size a record over 1 MiB, and all records together
  beyond their first MiB, may unpack to: 100. torch writes records stored (1x); re-zipped weights
  deflate to 1-2x; only long runs of one byte (what a zip bomb is made of, ~1000x) go past it.
  So reading a file costs at most 1 MiB plus 100 times its size;
- MAX_PICKLE_BYTES: the archive's pickle (`data.pkl`): 4 MiB (YOLOv5's are under 200 KB; one byte of
  pickle can make a 64-byte object, so this also bounds what unpickling builds);
- MAX_TENSOR_ELEMENTS: one tensor: 2**31 elements;
- MAX_TOTAL_ELEMENTS: all tensors of a file, views counted each time: 2**32 elements.

A tensor's layout must also fit its storage: sizes >= 0, strides > 0 on every dimension longer
than 1 (a zero stride repeats one element; a negative one reads backwards), its extent
(offset + 1 + sum of (size - 1) * stride) within the storage, and no more elements than the
storage holds from its offset (overlapping views would multiply what a conversion allocates).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from typing import Any

import torch

MAX_RECORD_BYTES = 2**30
MAX_ARCHIVE_BYTES = 2**31
MAX_INFLATION = 100
_INFLATION_FREE_BYTES = 2**20  # small records (a byteorder, a tiny tensor of zeros) may inflate more
MAX_PICKLE_BYTES = 2**22
MAX_TENSOR_ELEMENTS = 2**31
MAX_TOTAL_ELEMENTS = 2**32
MAX_DIMENSIONS = 64  # torch's own limit on a tensor's dimensions
_CHUNK_BYTES = 1 << 22  # records are read this much at a time


class UnsafeCheckpointError(ValueError):
    """The file names something the safe reader will not construct, claims more than the limits
    above allow, or is damaged."""


@dataclass(frozen=True)
class TensorLayout:
    """Where a tensor's elements lie in its storage (counted in elements, not bytes)."""

    storage_offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorLayout":
        return cls(tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()))

    @classmethod
    def from_pickle(cls, storage_offset: Any, size: Any, stride: Any) -> "TensorLayout":
        """From a pickle's rebuild arguments, which may be any objects: only plain ints pass."""
        if not _is_int(storage_offset):
            raise UnsafeCheckpointError(f"storage offset {storage_offset!r:.40} is not an integer")
        for name, value in (("size", size), ("stride", stride)):
            if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
                raise UnsafeCheckpointError(f"{name} {value!r:.80} is not a sequence of integers")
        if len(size) != len(stride):
            raise UnsafeCheckpointError(f"{len(size)} sizes but {len(stride)} strides")
        return cls(storage_offset, tuple(size), tuple(stride))

    @property
    def numel(self) -> int:
        return math.prod(self.size)

    def problem(self, storage_numel: int) -> str | None:
        """Why this layout must not be built over a storage of `storage_numel` elements, or None."""
        if len(self.size) > MAX_DIMENSIONS:
            return f"{len(self.size)} dimensions (at most {MAX_DIMENSIONS})"
        if self.storage_offset < 0:
            return f"negative storage offset {self.storage_offset}"
        if any(s < 0 for s in self.size):
            return f"negative size {list(self.size)}"
        if any(st < 0 for st in self.stride):
            return f"negative stride {list(self.stride)}"
        if any(st == 0 and s > 1 for s, st in zip(self.size, self.stride)):
            return f"zero stride on a dimension longer than 1 (size {list(self.size)}, stride {list(self.stride)})"
        numel = self.numel
        if numel > MAX_TENSOR_ELEMENTS:
            return f"{numel} elements (at most {MAX_TENSOR_ELEMENTS} per tensor)"
        if numel == 0:
            return None if self.storage_offset <= storage_numel else (
                f"storage offset {self.storage_offset} beyond its storage of {storage_numel} elements")
        extent = self.storage_offset + 1 + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if extent > storage_numel:
            return (f"size {list(self.size)}, stride {list(self.stride)} and offset {self.storage_offset} reach "
                    f"element {extent} of a storage of {storage_numel}")
        if numel > storage_numel - self.storage_offset:
            return f"{numel} elements overlap in a storage of {storage_numel} (offset {self.storage_offset})"
        return None


@dataclass
class ElementTally:
    """The elements of the tensors built from one file so far, against MAX_TOTAL_ELEMENTS."""

    total: int = 0

    def add(self, numel: int) -> str | None:
        """Counts `numel` more, or says why not (and counts nothing)."""
        if self.total + numel > MAX_TOTAL_ELEMENTS:
            return f"the file's tensors exceed {MAX_TOTAL_ELEMENTS} elements together"
        self.total += numel
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_declared_sizes(zf: zipfile.ZipFile, source: str) -> None:
    """Every record's unpacked size as the archive's directory declares it, before any is read.
    (Reads must still be capped: a record can inflate to more than its header says.)"""
    total = packed = 0
    for info in zf.infolist():
        if info.file_size > MAX_RECORD_BYTES:
            raise UnsafeCheckpointError(f"{source}: record {info.filename!r:.120} unpacks to {info.file_size} bytes "
                                        f"(at most {MAX_RECORD_BYTES} per record)")
        if info.file_size > max(_INFLATION_FREE_BYTES, MAX_INFLATION * info.compress_size):
            raise UnsafeCheckpointError(f"{source}: record {info.filename!r:.120} unpacks to {info.file_size} bytes "
                                        f"from {info.compress_size} (at most {MAX_INFLATION} times: a zip bomb?)")
        total += info.file_size
        packed += info.compress_size
    if total > MAX_ARCHIVE_BYTES:
        raise UnsafeCheckpointError(f"{source}: its records unpack to {total} bytes together "
                                    f"(at most {MAX_ARCHIVE_BYTES})")
    if total > _INFLATION_FREE_BYTES + MAX_INFLATION * packed:
        raise UnsafeCheckpointError(f"{source}: its records unpack to {total} bytes from {packed} "
                                    f"(at most {MAX_INFLATION} times beyond the first MiB: a zip bomb?)")


def read_record(zf: zipfile.ZipFile, name: str, nbytes: int, source: str) -> bytearray:
    """The first `nbytes` of a record, which must hold at least that many; the rest of it is read
    in chunks and dropped (up to its declared size), so zipfile checks its CRC. Never holds more
    than `nbytes` plus one chunk, whatever the record inflates to."""
    info = zf.getinfo(name)
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    with zf.open(info) as record:
        filled = 0
        while filled < nbytes:
            got = record.readinto(view[filled:filled + _CHUNK_BYTES])
            if not got:
                raise UnsafeCheckpointError(f"{source}: record {name!r:.120} holds {filled} bytes, "
                                            f"{nbytes} expected")
            filled += got
        left = info.file_size - nbytes
        while left > 0:
            chunk = record.read(min(left, _CHUNK_BYTES))
            if not chunk:
                break
            left -= len(chunk)
    return buffer


def read_small_record(zf: zipfile.ZipFile, name: str, limit: int, source: str) -> bytes:
    """A whole record known to be small (the pickle, the byteorder), refused past `limit` bytes."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UnsafeCheckpointError(f"{source}: {name!r:.120} unpacks to {info.file_size} bytes (at most {limit})")
    with zf.open(info) as record:
        data = record.read(limit + 1)
    if len(data) > limit:
        raise UnsafeCheckpointError(f"{source}: {name!r:.120} unpacks to more than {limit} bytes")
    return data
