"""Shared fixtures: the shared COCO128 copy, a small synthetic dataset made once per session, and a
throwaway PostgreSQL 15 server on loopback with one fresh database per test (`postgres_url`).

The PostgreSQL server lives in a temp dir for the whole session (start ~0.7 s); each test gets a
fresh, empty database, so tests never see each other's rows. Running as root, PostgreSQL's
binaries run as the `postgres` user (initdb refuses root). Used by tests/evolver and tests/api.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.paths import SHARED

# Two cores: keep torch from oversubscribing when tests run beside data-loader processes.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def coco128_dir() -> Path:
    path = SHARED / "datasets" / "coco128"
    if not path.is_dir():
        pytest.fail(f"COCO128 is expected at {path} (set EVOLVER_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A small synthetic dataset (data yaml path) for fast training tests."""
    from yolo.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n_train=64, n_val=16, img_size=128, seed=0)


@pytest.fixture(scope="session")
def trained_run(tiny_synthetic, tmp_path_factory):
    """(config, result, epoch reports) of a 6-epoch yolov5n run on the tiny synthetic dataset."""
    from yolo.hyp import Hyperparameters
    from yolo.train import TrainConfig, train

    config = TrainConfig(data=str(tiny_synthetic), epochs=6, img_size=128, batch_size=16, workers=0,
                         save_dir=str(tmp_path_factory.mktemp("run") / "exp"), progress=False)
    reports = []
    result = train(config, Hyperparameters(), callbacks=[reports.append])
    return config, result, reports


@dataclass
class PostgresServer:
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) is not installed")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="evpg-"))  # short: it also holds the AF_UNIX socket
    if as_postgres:
        shutil.chown(root, "postgres")
    data = root / "data"
    port = _free_port()
    started = False
    try:
        _run([*as_postgres, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run([*as_postgres, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o", options, "start"])
        started = True
        yield PostgresServer(port=port)
    finally:
        if started:
            subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                           check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a fresh, empty PostgreSQL database (server shared by the session)."""
    return postgres_server.new_database()


@pytest.fixture(scope="module")
def local_ray():
    """An in-process Ray on 127.0.0.1 (evolver.cluster keeps it on loopback) for one module."""
    from evolver.cluster import connect, disconnect

    disconnect()
    connect(num_cpus=2)
    yield
    disconnect()
