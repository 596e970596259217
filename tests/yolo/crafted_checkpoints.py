"""Hostile torch zip checkpoints written byte by byte (pickle opcodes, zip headers), for the tests
of the safe reader's limits and of the API that refuses them. Each is a few hundred bytes to a
few MB on disk, whatever it claims.

A model file holds `{'model': <models.yolo.DetectionModel record>}` whose `_parameters` hold the
tensors, rebuilt by `torch._utils._rebuild_tensor_v2` with the layouts the test chooses: the
reader's error must name one `model.<name>` (`model.weight` where there is one).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

TENSOR_PATH = "model.weight"


def _text(value: str) -> bytes:
    """BINUNICODE."""
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    """INT: decimal text, any size."""
    return b"I%d\n" % value


def _int_tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


@dataclass(frozen=True)
class CraftedTensor:
    """What the pickle claims about one tensor and its storage (element counts, not bytes)."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    storage_numel: int
    offset: int = 0
    storage_class: str = "HalfStorage"
    key: str = "0"

    def rebuild_opcodes(self) -> bytes:
        """_rebuild_tensor_v2(<storage>, offset, size, stride, False, OrderedDict())."""
        storage_id = (b"(" + _text("storage") + b"ctorch\n" + self.storage_class.encode() + b"\n"
                      + _text(self.key) + _text("cpu") + _int(self.storage_numel) + b"t")
        return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage_id + b"Q" + _int(self.offset)
                + _int_tuple(self.size) + _int_tuple(self.stride) + b"\x89"
                + b"ccollections\nOrderedDict\n)R" + b"tR")



def model_pickle(tensors: dict[str, CraftedTensor]) -> bytes:
    """{'model': DetectionModel record with state {'_parameters': {name: tensor, ...}}}."""
    parameters = b"".join(_text(name) + tensor.rebuild_opcodes() + b"s" for name, tensor in tensors.items())
    return (b"\x80\x02}" + _text("model") + b"cmodels.yolo\nDetectionModel\n)\x81"
            + b"}" + _text("_parameters") + b"}" + parameters + b"sbs.")


def write_archive(path: Path, pickled: bytes, storages: dict[str, bytes]) -> Path:
    """A torch-style zip: archive/data.pkl, archive/byteorder, archive/version, archive/data/<key>."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        for key, data in storages.items():
            zf.writestr(f"archive/data/{key}", data)
    return path


def write_model_file(path: Path, tensors: dict[str, CraftedTensor]) -> Path:
    """The model file, each storage holding as many bytes as its tensor claims (2 an element),
    none of them zeros only (so that no record inflates far)."""
    storages = {t.key: bytes(range(256)) * (2 * t.storage_numel // 256) + bytes(2 * t.storage_numel % 256)
                for t in tensors.values()}
    return write_archive(path, model_pickle(tensors), storages)


def write_tensor_file(path: Path, tensor: CraftedTensor) -> Path:
    """The model file of one tensor, `weight`."""
    return write_model_file(path, {"weight": tensor})


# ----------------------------------------------------------------------------- zip bombs
_ZEROS_CHUNK = 1 << 24


def _deflated_zeros(size: int) -> tuple[bytes, int]:
    """(raw deflate stream of `size` zero bytes, their CRC-32), made without deflating them all:
    after a full flush the compressor forgets its history, so every 16 MiB chunk compresses alike."""
    chunk_size = min(size, _ZEROS_CHUNK)
    if size % chunk_size:
        raise ValueError(f"size must be a multiple of {_ZEROS_CHUNK} or smaller")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(chunk_size)) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros, crc = bytes(chunk_size), 0
    for _ in range(size // chunk_size):
        crc = zlib.crc32(zeros, crc)
    return chunk * (size // chunk_size) + compressor.flush(), crc


@dataclass(frozen=True)
class _Record:
    name: str
    method: int
    data: bytes  # as stored (deflated or not)
    crc: int
    declared_size: int  # what the directory says it unpacks to


def _write_zip_by_hand(path: Path, records: list[_Record]) -> Path:
    """Local headers, data, central directory, end record: zipfile would deflate every byte itself
    and could not state a size other than the true one."""
    out, directory = io.BytesIO(), io.BytesIO()
    for record in records:
        name = record.name.encode()
        offset = out.tell()
        out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, record.method, 0, 0x21,
                              record.crc, len(record.data), record.declared_size, len(name), 0))
        out.write(name + record.data)
        directory.write(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, record.method, 0, 0x21,
                                    record.crc, len(record.data), record.declared_size, len(name), 0, 0, 0, 0, 0,
                                    offset))
        directory.write(name)
    start = out.tell()
    out.write(directory.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(directory.getvalue()),
                          start, 0))
    path.write_bytes(out.getvalue())
    return path


def _stored(name: str, data: bytes) -> _Record:
    return _Record(name, zipfile.ZIP_STORED, data, zlib.crc32(data), len(data))


def write_zip_bomb(path: Path, unpacked: int, records: int = 1, declared: int | None = None) -> Path:
    """A model file whose tensor's storage record(s) `archive/data/<i>` each inflate to `unpacked`
    zero bytes (~1 KB on disk per MiB); `declared`: the size the directory states instead of the
    true one (a lying header). The pickle claims the storage holds what the header says."""
    stream, crc = _deflated_zeros(unpacked)
    declared = unpacked if declared is None else declared
    tensor = CraftedTensor(size=(declared // 2,), stride=(1,), storage_numel=declared // 2)
    bombs = [_Record(f"archive/data/{i}", zipfile.ZIP_DEFLATED, stream, crc, declared) for i in range(records)]
    return _write_zip_by_hand(path, [_stored("archive/data.pkl", model_pickle({"weight": tensor})),
                                     _stored("archive/byteorder", b"little"), _stored("archive/version", b"3\n"),
                                     *bombs])


# ----------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class PeakMemory:
    """How far the process's resident memory rises above its level at entry, at the peak, in MB.

    Linux keeps a high-water mark (VmHWM) that `/proc/self/clear_refs` resets to the current
    RSS, so the peak of the block alone is measured; where that reset is not allowed, the rise
    of `ru_maxrss` (the lifetime peak) is taken, which can only under-report a block that stays
    below an earlier peak, never over-report."""

    def __enter__(self) -> "PeakMemory":
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._high_water = True
        except OSError:
            self._high_water = False
        self._before_kb = _status_kb("VmRSS") if self._high_water else self._lifetime_peak_kb()
        self.rise_mb = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_kb("VmHWM") if self._high_water else self._lifetime_peak_kb()
        self.rise_mb = (peak - self._before_kb) / 1024

    @staticmethod
    def _lifetime_peak_kb() -> int:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
