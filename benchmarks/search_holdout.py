"""The product's promise, checked on data no trial saw: each campaign's winner retrained with a
fresh seed and validated on a held-out split, against the base hyperparameters retrained the same
way.

The held-out split is 256 new images of the demo's shifted task (the same generator and style,
another generation seed); training uses the campaigns' own train split, epochs, image size, batch
and start weights. Each retraining is one process with one torch thread, two at a time. Results go
into the ledger as `"kind": "holdout"` rows.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.search_campaigns import DEMO_SPEC, Experiment, demo_spec, read_ledger

HOLDOUT_SEED = 1  # the campaigns' dataset is generation seed 0
HOLDOUT_IMAGES = 256
FRESH_SEED_BASE = 900_000  # training seeds no trial drew (those are drawn in 0 .. 2^31 at random)


def holdout_data(folder: Path) -> Path:
    """A data yaml: the demo's train split, validated on held-out images."""
    from yolo.synthetic import BUILTIN_DATASETS, SHIFTED_STYLE, builtin_dataset, generate_synthetic_dataset

    demo = BUILTIN_DATASETS["synthetic-shifted"]
    train_yaml = builtin_dataset("synthetic-shifted")
    held_yaml = generate_synthetic_dataset(folder / "holdout-images", n_train=1, n_val=HOLDOUT_IMAGES,
                                           img_size=demo.img_size, seed=HOLDOUT_SEED, style=SHIFTED_STYLE)
    names = ["circle", "square", "triangle", "cross"]
    data = folder / "holdout.yaml"
    data.write_text(json.dumps({"train": str(train_yaml.parent / "images" / "train"),
                                "val": str(held_yaml.parent / "images" / "val"), "nc": len(names), "names": names}),
                    encoding="utf-8")  # JSON is YAML
    return data


def retrain(job: dict) -> dict:
    import torch

    from evolver.campaign import CampaignSpec
    from yolo.hyp import Hyperparameters
    from yolo.train import train

    torch.set_num_threads(1)
    spec = CampaignSpec.model_validate(demo_spec(job["trial_spec"]))
    config = spec.train_config(seed=job["training_seed"], save_dir=job["save_dir"], weights=spec.weights)
    config = dataclasses.replace(config, data=job["data"], workers=0)
    result = train(config, Hyperparameters.from_dict(job["hyp"]))
    metrics = result.metrics
    return {**{k: v for k, v in job.items() if k not in ("data", "save_dir", "trial_spec")}, "kind": "holdout",
            "fitness": metrics["fitness"], "map": metrics["metrics/mAP_0.5:0.95"], "map50": metrics["metrics/mAP_0.5"]}


def holdout_jobs(experiment: Experiment, folder: Path, winner_seeds: int, base_seeds: int) -> list[dict]:
    from evolver.campaign import CampaignSpec

    trials = read_ledger(experiment.ledger, "trial", ["config", "seed", "number", "status", "fitness", "hyp"])
    retrained = read_ledger(experiment.ledger, "holdout", ["role", "config", "seed", "training_seed"])
    done = set(retrained.itertuples(index=False, name=None))
    data = str(holdout_data(folder))
    jobs = []
    completed = trials[(trials["status"] == "completed") & trials["fitness"].notna()]
    for (config, seed), campaign in completed.groupby(["config", "seed"]):
        # The campaign's best completed trial, the earliest of equals; numbers as JSON writes them.
        winner = campaign.sort_values(["fitness", "number"], ascending=[False, True]).iloc[0]
        for k in range(winner_seeds):
            jobs.append({"role": "winner", "config": config, "seed": int(seed), "trial": int(winner["number"]),
                         "trial_fitness": float(winner["fitness"]), "hyp": winner["hyp"],
                         "training_seed": FRESH_SEED_BASE + 1000 * int(seed) + k})
    base = CampaignSpec.from_yaml(DEMO_SPEC).base_hyp()
    for k in range(base_seeds):
        jobs.append({"role": "base", "config": "base", "seed": k, "trial": None, "trial_fitness": None,
                     "hyp": base, "training_seed": FRESH_SEED_BASE + 500 + k})
    jobs = [j for j in jobs if (j["role"], j["config"], j["seed"], j["training_seed"]) not in done]
    for i, job in enumerate(jobs):
        job.update(data=data, save_dir=str(folder / f"retrain-{i}"), trial_spec=experiment.trial)
    return jobs


def run_holdout(experiment: Experiment, folder: Path, winner_seeds: int = 2, base_seeds: int = 8,
                processes: int = 2) -> None:
    """The experiment's retrainings missing from its ledger (trained like its trials)."""
    jobs = holdout_jobs(experiment, folder, winner_seeds, base_seeds)
    print(f"holdout: {len(jobs)} retrainings", flush=True)
    with ProcessPoolExecutor(processes) as pool:
        for row in pool.map(retrain, jobs):
            with open(experiment.ledger, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
            print(f"  {row['role']} {row['config']} seed {row['seed']}: held-out fitness {row['fitness']:.4f}", flush=True)
