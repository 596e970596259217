"""The safe reader's limits (yolo.checkpoint_limits): a file that claims more than it holds (a
tensor reaching past its storage, a stride of 0 repeating two bytes 10^13 times, a record that
inflates to gigabytes) is refused with an UnsafeCheckpointError naming the file and the tensor,
before anything it claims is allocated: the process's peak memory rises by less than
MEMORY_RISE_MB. Every file is written by hand in tests/yolo/crafted_checkpoints.py.

Run with -s to see each case's measured rise.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import torch

from tests.yolo.crafted_checkpoints import (
    TENSOR_PATH,
    CraftedTensor,
    PeakMemory,
    model_pickle,
    write_archive,
    write_model_file,
    write_tensor_file,
    write_zip_bomb,
)
from yolo import checkpoint_limits
from yolo.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from yolo.checkpoint_limits import MAX_RECORD_BYTES, MAX_TENSOR_ELEMENTS
from yolo.safe_unpickle import PickledObject, UnsafeCheckpointError, load_restricted
from yolo.yolov5_weights import checkpoint_from_payload

MEMORY_RISE_MB = 200
LOADERS = {"load_checkpoint": load_checkpoint, "load_restricted": load_restricted}

# (tensor the file claims, what the refusal must say)
HOSTILE_LAYOUTS = {
    # the filed case: 10^13 half floats (20 TB; 40 TB once converted) over a 2-byte storage
    "stride0-1e13": (CraftedTensor(size=(10**13,), stride=(0,), storage_numel=1), r"zero stride"),
    # 10^9 elements fit in virtual memory: converting them would really take 4 GB
    "stride0-1e9": (CraftedTensor(size=(10**9,), stride=(0,), storage_numel=1), r"zero stride"),
    "stride1-1e9-extent": (CraftedTensor(size=(10**9,), stride=(1,), storage_numel=1),
                           r"reach element 1000000000 of a storage of 1\b"),
    # 2^30 elements whose windows overlap within 2^16: in bounds, but 16384x what the storage holds
    "overlapping-2^30": (CraftedTensor(size=(2**15, 2**15), stride=(1, 1), storage_numel=2**16),
                         r"1073741824 elements overlap in a storage of 65536"),
    "over-element-bound": (CraftedTensor(size=(2**16, 2**16), stride=(2**16, 1), storage_numel=1),
                           rf"4294967296 elements \(at most {MAX_TENSOR_ELEMENTS} per tensor\)"),
    "negative-stride": (CraftedTensor(size=(4,), stride=(-1,), storage_numel=4, offset=3), r"negative stride"),
    "zero-stride-small": (CraftedTensor(size=(4, 2), stride=(0, 1), storage_numel=8), r"zero stride"),
    "negative-size": (CraftedTensor(size=(-1, 4), stride=(4, 1), storage_numel=4), r"negative size"),
    "offset-past-end": (CraftedTensor(size=(4,), stride=(1,), storage_numel=4, offset=2),
                        r"reach element 6 of a storage of 4\b"),
}


def refused_within_memory(load, path: Path, match: str) -> float:
    """Asserts `load(path)` raises UnsafeCheckpointError matching `match`, with the peak memory
    rising less than MEMORY_RISE_MB; returns the rise (MB)."""
    with PeakMemory() as peak, pytest.raises(UnsafeCheckpointError, match=match):
        load(path)
    print(f"\n  {path.name} via {load.__name__}: peak RSS +{peak.rise_mb:.1f} MB")
    assert peak.rise_mb < MEMORY_RISE_MB, f"{path.name}: peak memory rose {peak.rise_mb:.0f} MB"
    return peak.rise_mb


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", HOSTILE_LAYOUTS)
def test_a_tensor_outside_its_storage_is_refused_by_name_allocating_nothing(tmp_path, case, loader):
    tensor, reason = HOSTILE_LAYOUTS[case]
    path = write_tensor_file(tmp_path / f"{case}.pt", tensor)
    named = rf"{re.escape(str(path))}: tensor {re.escape(TENSOR_PATH)} \(storage '0'\): .*{reason}"
    refused_within_memory(LOADERS[loader], path, named)


def test_the_filed_file_is_under_a_kilobyte():
    tensor, _ = HOSTILE_LAYOUTS["stride0-1e13"]
    assert len(model_pickle({"weight": tensor})) < 400  # the 719-byte file of the issue, zipped


def test_a_good_tensor_beside_a_hostile_one_is_not_what_is_named(tmp_path):
    path = write_model_file(tmp_path / "two.pt", {
        "bias": CraftedTensor(size=(4,), stride=(1,), storage_numel=4, key="0"),
        "huge": CraftedTensor(size=(10**13,), stride=(0,), storage_numel=1, key="1"),
    })
    with pytest.raises(UnsafeCheckpointError, match=r"tensor model\.huge \(storage '1'\): zero stride"):
        load_restricted(path)


def test_the_tensors_of_a_file_are_bounded_together(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_limits, "MAX_TOTAL_ELEMENTS", 100)
    fits = {name: CraftedTensor(size=(50,), stride=(1,), storage_numel=50, key=name) for name in ("a", "b")}
    assert [t.shape[0] for t in load_restricted(write_model_file(tmp_path / "fits.pt", fits))
            ["model"].state["_parameters"].values()] == [50, 50]
    over = {**fits, "c": CraftedTensor(size=(1,), stride=(1,), storage_numel=1, key="c")}
    with pytest.raises(UnsafeCheckpointError, match=r"tensor model\.c \(storage 'c'\): .*exceed 100 elements together"):
        load_restricted(write_model_file(tmp_path / "over.pt", over))


def test_views_share_their_storage_read_once(tmp_path):
    """Two tensors over one storage (as torch saves views) share its bytes."""
    path = write_model_file(tmp_path / "views.pt", {
        "whole": CraftedTensor(size=(8,), stride=(1,), storage_numel=8),
        "half": CraftedTensor(size=(2, 2), stride=(2, 1), storage_numel=8, offset=4),
    })
    params = load_restricted(path)["model"].state["_parameters"]
    assert params["half"].untyped_storage().data_ptr() == params["whole"].untyped_storage().data_ptr()
    assert torch.equal(params["half"].flatten(), params["whole"][4:])


# ----------------------------------------------------------------------------- zip bombs
@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bombs")


@pytest.mark.parametrize("loader", LOADERS)
def test_a_2_gib_record_in_a_2_mb_file_is_refused_before_it_is_read(bombs, loader):
    path = bombs / "bomb-2gib.pt"
    if not path.exists():
        write_zip_bomb(path, unpacked=2**31)
    assert path.stat().st_size < 3 * 2**20
    refused_within_memory(LOADERS[loader], path, rf"{re.escape(str(path))}: record 'archive/data/0' unpacks to "
                                                 rf"2147483648 bytes \(at most {MAX_RECORD_BYTES} per record\)")


@pytest.mark.parametrize("loader", LOADERS)
def test_a_record_inflating_1000_times_under_the_size_bound_is_refused(bombs, loader):
    path = write_zip_bomb(bombs / "bomb-512mib.pt", unpacked=2**29)
    refused_within_memory(LOADERS[loader], path, r"record 'archive/data/0' unpacks to 536870912 bytes from \d+ "
                                                 r"\(at most 100 times: a zip bomb\?\)")


@pytest.mark.parametrize("loader", LOADERS)
def test_many_small_records_inflating_1000_times_are_refused_together(bombs, loader):
    """Each record (1 MiB of zeros, 1 KB packed) is too small to judge alone; 300 of them are not."""
    path = write_zip_bomb(bombs / "bomb-300x1mib.pt", unpacked=2**20, records=300)
    refused_within_memory(LOADERS[loader], path, r"its records unpack to 3145\d{5} bytes from \d+ "
                                                 r"\(at most 100 times beyond the first MiB: a zip bomb\?\)")


@pytest.mark.parametrize("loader", LOADERS)
def test_a_header_declaring_less_than_the_record_inflates_to_stops_the_read(bombs, loader):
    """The directory says 64 bytes; the record inflates to 2 GiB: 64 are read, then its CRC fails."""
    path = write_zip_bomb(bombs / "lying-header.pt", unpacked=2**31, declared=64)
    refused_within_memory(LOADERS[loader], path, r"damaged or unreadable checkpoint \(BadZipFile: Bad CRC-32")


def test_the_records_of_a_file_are_bounded_together(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_limits, "MAX_ARCHIVE_BYTES", 1000)
    tensors = {name: CraftedTensor(size=(200,), stride=(1,), storage_numel=200, key=name) for name in ("a", "b")}
    path = write_model_file(tmp_path / "big.pt", tensors)  # 2 x 400 bytes, plus the pickle
    for load in LOADERS.values():
        with pytest.raises(UnsafeCheckpointError, match=r"big\.pt: its records unpack to \d+ bytes together "
                                                        r"\(at most 1000\)"):
            load(path)


def test_a_pickle_over_its_bound_is_refused(tmp_path):
    pickled = b"\x80\x02X" + (5 * 2**20).to_bytes(4, "little") + bytes(range(256)) * (5 * 2**20 // 256) + b"."
    path = write_archive(tmp_path / "big-pickle.pt", pickled, {})
    with pytest.raises(UnsafeCheckpointError, match=r"'archive/data\.pkl' unpacks to 5242888 bytes \(at most 4194304\)"):
        load_restricted(path)


# ----------------------------------------------------------------------------- malformed files
GOOD = CraftedTensor(size=(4,), stride=(1,), storage_numel=4)  # over archive/data/0, 8 bytes
STORAGE_ID = (b"(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuI4\ntQ")
MALFORMED = {
    # (bytes of GOOD's model pickle, replaced by, what the refusal says)
    "truncated": (b"sbs.", b"sb", r"damaged or unreadable checkpoint \(EOFError"),
    "bad-opcode": (b"sbs.", b"s\xffbs.", r"damaged or unreadable checkpoint \(UnpicklingError"),
    "size-not-ints": (b"(I4\nt(I1\nt", b"X\x03\x00\x00\x00big(I1\nt",
                      r"tensor model\.weight \(storage '0'\): size 'big' is not a sequence of integers"),
    "bool-offset": (b"QI0\n(", b"Q\x88(", r"storage offset True is not an integer"),
    "stride-count": (b"(I1\nt\x89", b"(I1\nI1\nt\x89", r"1 sizes but 2 strides"),
    "requires-grad-text": (b"t\x89c", b"tX\x03\x00\x00\x00yesc", r"requires_grad is 'yes', not a bool"),
    "hooks-not-empty": (b")Rt", b")RX\x01\x00\x00\x00kI1\nst", r"backward hooks are stored with it"),
    "metadata": (b")Rt", b")R}X\x03\x00\x00\x00negI1\nst", r"metadata .*only plain tensors"),
    "not-over-a-storage": (STORAGE_ID, b"I7\n", r"tensor model\.weight: built over a int, not a storage"),
    "numel-text": (b"I4\ntQ", b"X\x01\x00\x00\x004tQ", r"malformed storage reference"),
    "missing-storage": (b"X\x01\x00\x00\x000X\x03", b"X\x01\x00\x00\x009X\x03", r"storage '9' is missing"),
    "claims-more-than-held": (b"I4\ntQ", b"I5\ntQ", r"storage '0' claims 10 bytes but the file holds 8"),
    "short-pid": (b"X\x03\x00\x00\x00cpu", b"", r"unexpected persistent id"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_every_malformed_file_is_an_unsafe_checkpoint_error(tmp_path, case):
    old, new, reason = MALFORMED[case]
    pickled = model_pickle({"weight": GOOD})
    assert pickled.count(old) == 1, case
    path = write_archive(tmp_path / f"{case}.pt", pickled.replace(old, new), {"0": bytes(8)})
    with pytest.raises(UnsafeCheckpointError, match=rf"{case}\.pt: .*{reason}"):
        load_restricted(path)


def test_the_good_file_the_malformed_ones_are_made_from_loads(tmp_path):
    path = write_archive(tmp_path / "good.pt", model_pickle({"weight": GOOD}), {"0": bytes(range(8))})
    weight = load_restricted(path)["model"].state["_parameters"]["weight"]
    assert torch.equal(weight, torch.frombuffer(bytearray(range(8)), dtype=torch.float16))


def test_a_file_that_is_not_a_zip_or_has_no_pickle_is_refused(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(UnsafeCheckpointError, match="not a torch zip archive"):
        load_restricted(path)
    path = tmp_path / "empty.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/other", b"x")
    with pytest.raises(UnsafeCheckpointError, match=r"expected one <name>/data\.pkl in the archive, found 0"):
        load_restricted(path)


def _module(kind: str, **modules) -> PickledObject:
    return PickledObject(f"torch.nn.modules.container.{kind}", {"_modules": modules, "_parameters": {}, "_buffers": {}})


def test_a_module_tree_that_loops_nests_or_fans_out_without_end_is_refused():
    model = PickledObject("models.yolo.DetectionModel", {"_modules": {}, "_parameters": {}})
    layers = _module("Sequential")
    layers.state["_modules"]["0"] = layers  # a loop
    model.state["_modules"]["model"] = layers
    with pytest.raises(UnsafeCheckpointError, match=r"x\.pt: module 'model(\.0)+': .*nested deeper than 16 levels"):
        checkpoint_from_payload({"model": model}, "x.pt")

    deep = _module("Sequential")
    for _ in range(10_000):  # past Python's recursion limit
        deep = _module("Sequential", inner=deep)
    model.state["_modules"]["model"] = deep
    with pytest.raises(UnsafeCheckpointError, match="nested deeper than 16 levels"):
        checkpoint_from_payload({"model": model}, "x.pt")

    wide = _module("Sequential")
    for _ in range(15):  # 2^15 paths through 15 shared modules
        wide = _module("Sequential", a=wide, b=wide)
    model.state["_modules"]["model"] = wide
    with pytest.raises(UnsafeCheckpointError, match="over 20000 modules"):
        checkpoint_from_payload({"model": model}, "x.pt")


def test_a_module_state_of_the_wrong_types_is_an_unsafe_checkpoint_error(tmp_path):
    """`_parameters` a list instead of a dict: the record is inert, reading it must not crash raw."""
    pickled = model_pickle({"weight": GOOD}).replace(b"X\x0b\x00\x00\x00_parameters}", b"X\x0b\x00\x00\x00_parameters]")
    pickled = pickled.replace(b"tRssbs.", b"tRasbs.").replace(b"X\x06\x00\x00\x00weight", b"")
    path = write_archive(tmp_path / "list-params.pt", pickled, {"0": bytes(8)})
    assert isinstance(load_restricted(path)["model"].state["_parameters"], list)
    with pytest.raises(UnsafeCheckpointError, match=r"list-params\.pt: not a well-formed YOLOv5 checkpoint "
                                                    r"\(AttributeError"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- evolver's own format
def test_an_evolver_checkpoint_with_a_stride0_tensor_is_refused_by_name(tmp_path):
    """torch.load(weights_only=True) builds the view without complaint; load_checkpoint refuses it."""
    huge = torch.zeros(1, dtype=torch.float16).expand(10**13)
    path = save_checkpoint(tmp_path / "evolver.pt", Checkpoint(model_state={"w": huge}, model_config={}, names=[]))
    assert path.stat().st_size < 4096
    refused_within_memory(load_checkpoint, path, r"evolver\.pt: tensor model\.w: zero stride")


def test_an_evolver_checkpoint_within_the_limits_loads_as_saved(tmp_path):
    state = {"w": torch.arange(12.0).view(3, 4), "n": torch.tensor(7)}
    path = save_checkpoint(tmp_path / "ok.pt", Checkpoint(model_state=state, model_config={"name": "x"}, names=["a"]))
    loaded = load_checkpoint(path)
    assert loaded.model_state.keys() == state.keys() and all(torch.equal(loaded.model_state[k], v)
                                                              for k, v in state.items())
