"""One DDP training process, and the launcher side that starts one per device.

    python -m yolo.ddp_main --job runs/train/exp/ddp_job.json

The job file holds the TrainConfig and hyperparameters as JSON (no pickles cross processes).
`train_distributed` writes it, launches the ranks (`yolo.distributed.launch`) and reads back the
result rank 0 wrote. The same module runs under torchrun unchanged:

    python -m torch.distributed.run --nproc_per_node 2 -m yolo.ddp_main --job job.json

(`python -m torch.distributed.run --nproc_per_node 2 -m evolver train --device 0,1 ...` works
too: `train` sees the torchrun environment and trains that rank.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from yolo.device import VISIBILITY_MARK, check_devices_exist, parse_device, visible_devices_for
from yolo.distributed import backend_for, check_sync_bn, current_rank, launch
from yolo.hyp import Hyperparameters
from yolo.train import TrainConfig, TrainResult, train

JOB_FILE = "ddp_job.json"
RESULT_FILE = "train_result.json"


@dataclass(frozen=True)
class TrainJob:
    config: TrainConfig
    hyp: Hyperparameters
    resume_from: str | None = None

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"config": self.config.to_dict(), "hyp": self.hyp.to_dict(), "resume_from": self.resume_from}
        path.write_text(json.dumps(row, indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> "TrainJob":
        row = json.loads(Path(path).read_text())
        return cls(TrainConfig.from_dict(row["config"]), Hyperparameters.from_dict(row["hyp"]), row.get("resume_from"))


def train_distributed(config: TrainConfig, hyp: Hyperparameters | None = None,
                      resume_from: str | Path | None = None, nproc: int | None = None) -> TrainResult:
    """Train with one process per GPU of `config.device` (or `nproc` gloo processes on CPU).

    Checks the GPUs exist before starting anything; each child sees exactly the listed GPUs
    (CUDA_VISIBLE_DEVICES set in its environment before it starts) and rank r uses `cuda:r`.
    """
    hyp = hyp or Hyperparameters()
    request = parse_device(config.device)
    env: dict[str, str] = {}
    if request.is_cuda:
        inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        check_devices_exist(request, available, inherited)
        if nproc is not None and nproc != request.processes:
            raise ValueError(f"--device {config.device} lists {request.processes} GPUs but nproc is {nproc}")
        mask = visible_devices_for(request, inherited)
        env = {"CUDA_VISIBLE_DEVICES": mask, VISIBILITY_MARK: mask}
        nproc = request.processes
    elif request.kind == "cpu":
        if nproc is None or nproc < 1:
            raise ValueError("DDP on CPU needs an explicit number of processes (nproc)")
        check_sync_bn(config.sync_bn, backend_for(torch.device("cpu")))
    else:
        raise ValueError(f"device {config.device!r}: name the GPUs ('0,1') or 'cpu' for distributed training")
    if config.batch_size % nproc:
        raise ValueError(f"--batch {config.batch_size} (the total batch) must be a multiple of the {nproc} processes")
    save_dir = Path(config.save_dir)
    job = TrainJob(config, hyp, None if resume_from is None else str(resume_from)).write(save_dir / JOB_FILE)
    result_path = save_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    launch("yolo.ddp_main", ["--job", str(job)], nproc, env)
    if not result_path.is_file():
        raise RuntimeError(f"the DDP ranks finished but rank 0 wrote no {result_path}")
    return TrainResult.from_dict(json.loads(result_path.read_text()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolo.ddp_main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", required=True, help=f"the {JOB_FILE} train_distributed wrote")
    args = parser.parse_args(argv)
    rank = current_rank()
    logging.basicConfig(level=logging.INFO if rank.is_main else logging.WARNING,
                        format=f"%(asctime)s rank{rank.rank} %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    job = TrainJob.read(Path(args.job))
    result = train(job.config, job.hyp, resume_from=job.resume_from)
    if rank.is_main:
        (Path(job.config.save_dir) / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
