"""`--device` parsing and mapping, as plain functions (no GPU needed except where marked)."""

from __future__ import annotations

import pytest
import torch

from yolo.device import (
    VISIBILITY_MARK, DeviceRequest, check_devices_exist, parse_device, rank_cuda_index, resolve_device,
    select_device, visible_devices_for,
)


@pytest.mark.parametrize("text, kind, indices", [
    ("cpu", "cpu", ()),
    ("CPU", "cpu", ()),
    ("", "auto", ()),
    (None, "auto", ()),
    ("auto", "auto", ()),
    ("0", "cuda", (0,)),
    (0, "cuda", (0,)),
    ("2,3", "cuda", (2, 3)),
    (" 2, 3 ", "cuda", (2, 3)),
    ("3,1", "cuda", (3, 1)),  # order kept: rank 0 takes the first listed
    ("cuda", "cuda", (0,)),
    ("cuda:1", "cuda", (1,)),
    ("cuda:0,1", "cuda", (0, 1)),
])
def test_parse_device_table(text, kind, indices):
    request = parse_device(text)
    assert (request.kind, request.indices) == (kind, indices)
    assert request.processes == max(1, len(indices))
    assert request.is_multi_gpu == (len(indices) > 1)


@pytest.mark.parametrize("text, message", [
    ("gpu", "not 'cpu'"),
    ("-1", "not 'cpu'"),
    ("0,,1", "not 'cpu'"),
    ("cpu,0", "not 'cpu'"),
    ("cuda:", "not 'cpu'"),
    ("cudax:1", "not 'cpu'"),
    ("1.5", "not 'cpu'"),
    ("0,0", "twice"),
])
def test_parse_device_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_device(text)


def test_missing_gpu_error_names_what_exists():
    with pytest.raises(ValueError) as err:
        check_devices_exist(parse_device("2,3"), available=3)
    text = str(err.value)
    assert "GPU 3 does not exist" in text and "torch.cuda.device_count() is 3: GPUs 0, 1, 2" in text
    with pytest.raises(ValueError, match=r"device_count\(\) is 0: no CUDA GPU.*use --device cpu"):
        check_devices_exist(parse_device("0"), available=0)
    with pytest.raises(ValueError, match=r"GPU 1 does not exist.*GPU 0 \(CUDA_VISIBLE_DEVICES=5\)"):
        check_devices_exist(parse_device("1"), available=1, visible="5")
    check_devices_exist(parse_device("1,0"), available=2)  # fine
    check_devices_exist(parse_device("cpu"), available=0)  # cpu needs no GPU


def test_visibility_selects_exactly_the_listed_gpus_and_composes():
    assert visible_devices_for(parse_device("2,3"), None) == "2,3"
    assert visible_devices_for(parse_device("3,1"), "") == "3,1"
    # inside a process that already sees only physical GPUs 4,5,6 (Ray does this), '1,2' is 5,6
    assert visible_devices_for(parse_device("1,2"), "4,5,6") == "5,6"
    with pytest.raises(ValueError, match="GPU 3 does not exist"):
        visible_devices_for(parse_device("3"), "4,5")
    with pytest.raises(ValueError, match="names no GPU"):
        visible_devices_for(parse_device("cpu"), None)


def test_each_rank_takes_its_local_ranks_gpu():
    request = parse_device("2,3")
    # plain torchrun: no visibility set by us, the listed index itself
    assert [rank_cuda_index(request, r, {}) for r in (0, 1)] == [2, 3]
    # our launcher: CUDA_VISIBLE_DEVICES=2,3 marked, so the GPUs are renumbered 0, 1
    launched = {"CUDA_VISIBLE_DEVICES": "2,3", VISIBILITY_MARK: "2,3"}
    assert [rank_cuda_index(request, r, launched) for r in (0, 1)] == [0, 1]
    # a mask someone else set (not our mark) keeps the listed indices
    assert rank_cuda_index(request, 1, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == 3
    with pytest.raises(ValueError, match=r"local rank 2 has no GPU.*lists 2 GPU.*--nproc_per_node 2"):
        rank_cuda_index(request, 2, {})


def test_resolve_cpu_and_auto_without_gpus():
    assert resolve_device(parse_device("cpu"), local_rank=1) == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert select_device("") == torch.device("cpu")
        with pytest.raises(ValueError, match=r"GPU 0 does not exist.*device_count\(\) is 0"):
            select_device("0")
    with pytest.raises(ValueError, match="several GPUs"):
        select_device("0,1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_resolve_real_gpus():
    count = torch.cuda.device_count()
    assert select_device(str(count - 1)) == torch.device("cuda", count - 1)
    with pytest.raises(ValueError, match=f"GPU {count} does not exist"):
        select_device(str(count))


def test_request_is_a_typed_value():
    assert parse_device("0,1") == DeviceRequest("0,1", "cuda", (0, 1))
