"""Ray for the worker tests, kept on loopback: one local instance shared, or a two-node cluster.

Ray rewrites 127.0.0.1 to the machine's first non-loopback address unless its "cluster" mode is
off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0). That variable is read once, when `ray` is first
imported, and other test packages may have imported ray already, so the fixture also sets the
constant it was read into; child processes (GCS, raylets, workers) read the variable afresh.
Every start is checked: node IPs must be 127.0.0.1 and no Ray process may listen beyond loopback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
LOCAL_CPUS, LOCAL_GPUS = 2, 2  # fake GPUs: Ray hands out ids "0" and "1", CUDA sees none


class RayForTests:
    """Starts at most one Ray at a time: the shared local instance, or a loopback cluster."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode: str | None = None
        self.cluster = None
        self.session = 0  # bumped on every start: actor handles of an older session are void
        self._saved_env = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_TMPDIR")}
        self._saved_constant: bool | None = None

    def local(self) -> None:
        import ray

        if self.mode == "local" and ray.is_initialized():
            return
        self.stop()
        self._loopback_only()
        ray.init(num_cpus=LOCAL_CPUS, num_gpus=LOCAL_GPUS, include_dashboard=False,
                 _temp_dir=str(self.root / "local"), logging_level="WARNING")
        self.mode = "local"
        self.session += 1
        self._check_loopback()

    def start_cluster(self, **head_args):
        """A head node on loopback, with the driver connected; returns ray.cluster_utils.Cluster."""
        import ray
        from ray.cluster_utils import Cluster

        self.stop()
        self._loopback_only()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "include_dashboard": False, "temp_dir": str(self.root / "cluster"), **head_args})
        self.mode = "cluster"
        self.session += 1
        ray.init(address=self.cluster.address, logging_level="WARNING")
        self._check_loopback()
        return self.cluster

    def add_node(self, **node_args):
        node = self.cluster.add_node(**node_args)
        self._check_loopback()
        return node

    def stop(self) -> None:
        import ray

        ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        self.mode = None

    def close(self) -> None:
        self.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._saved_constant is not None:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = self._saved_constant

    def _loopback_only(self) -> None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        # ray.cluster_utils writes the cluster address under $RAY_TMPDIR/ray: keep it in our folder.
        os.environ["RAY_TMPDIR"] = str(self.root)
        (self.root / "ray").mkdir(parents=True, exist_ok=True)
        from ray._private import ray_constants

        if self._saved_constant is None:
            self._saved_constant = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False

    def _check_loopback(self) -> None:
        import ray

        ips = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
        wide = non_loopback_listeners()
        if ips != {LOOPBACK} or wide:
            self.stop()
            pytest.fail(f"Ray left loopback (node IPs {sorted(ips)}, listening {wide}); stopped it")


def non_loopback_listeners() -> list[str]:
    """TCP sockets that this process or its descendants (Ray's processes) listen on beyond
    loopback, read from /proc (Linux)."""
    inodes = {inode: pid for pid in _descendants(os.getpid()) for inode in _socket_inodes(pid)}
    wide = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            address = local.rpartition(":")[0]
            if state == "0A" and inode in inodes and address not in _LOOPBACK_HEX:
                wide.append(f"{local} (pid {inodes[inode]})")
    return wide


# 127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net/tcp{,6} writes them
_LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier += children
    return found


def _socket_inodes(pid: int) -> list[str]:
    inodes = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.append(link[len("socket:["):-1])
    except OSError:
        pass
    return inodes


@pytest.fixture(scope="session")
def ray_for_tests() -> Iterator[RayForTests]:
    root = Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))  # short: Ray's AF_UNIX paths <= 107 bytes
    runner = RayForTests(root)
    try:
        yield runner
    finally:
        runner.close()
        shutil.rmtree(root, ignore_errors=True)

