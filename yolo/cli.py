"""The detector's commands: `evolver train | val | predict | prune | convert | synth` (also
`python -m yolo …`). Each parses its flags, builds the dataclass the library expects and makes one
call; no argument namespace travels further than this file.

`register` adds them to a parser; the `evolver` dispatcher finds it through the `evolver.commands`
entry point, so yolo imports nothing of the packages above it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from yolo.flag_values import (
    WEIGHTS_FILE, existing_file, non_negative_int, open_fraction, positive_int, unit_fraction,
)

Handler = Callable[[argparse.Namespace], int]

EXAMPLES = """\
  evolver train                       train yolov5n on the built-in synthetic dataset
  evolver train --data coco128.yaml --cfg yolov5s --epochs 10 --img 320 --hyp hyp.yaml
  evolver train --resume runs/train/exp/weights/last.pt
  evolver train --device 0,1 --batch 64 --freeze 10   DDP on GPUs 0 and 1, backbone frozen
  evolver val --weights runs/train/exp/weights/best.pt --data coco128.yaml --img 320
  evolver val --weights a.pt b.pt --augment       ensemble of two models, with test-time augmentation
  evolver val --weights best.pt --data data.yaml --split test   score the data yaml's test split
  evolver predict --weights best.pt --source images/ --img 640 --conf 0.25 --save-txt
  evolver prune --weights best.pt --amount 0.3   L1-prune conv weights, val before and after
  evolver train --data mydata.yaml --weights yolov5s.pt --epochs 10   fine-tune YOLOv5's weights
  evolver convert yolov5s.pt -o yolov5s-evolver.pt   YOLOv5 .pt -> evolver checkpoint (read safely)
  evolver synth --out datasets/shapes  write the synthetic dataset to a folder
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a detector", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a YOLOv5-class detector. Without --data, trains on the built-in "
        "synthetic shapes dataset (generated once, then cached).",
    )
    p.add_argument("--data", help="data yaml (YOLO format); default: the built-in synthetic dataset")
    p.add_argument("--cfg", help="model size: yolov5n/s/m/l/x (default: that of --weights, else yolov5n)")
    p.add_argument("--epochs", type=positive_int, default=15)
    p.add_argument("--img", "--img-size", dest="img_size", type=positive_int, default=256,
                   help="train/val image size (px; rounded up to a multiple of 32)")
    p.add_argument("--batch", "--batch-size", dest="batch_size", type=positive_int, default=16)
    p.add_argument("--hyp", help="hyperparameter yaml (YOLOv5's format); default: YOLOv5's scratch-low values")
    p.add_argument("--device", default="cpu",
                   help="'cpu', a GPU ('0', 'cuda:1'), or several GPUs ('0,1': one DDP process per GPU, "
                   "launched here; --batch is the total batch, split across them)")
    p.add_argument("--freeze", nargs="+", default=[], metavar="N",
                   help="freeze layers: one number N = the first N layers (10 = the backbone, layers 0-9); "
                   "several = those layer indices ('0 1 2' or '0,1,2'; one index alone: '5,')")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across DDP GPUs (needs CUDA/NCCL)")
    p.add_argument("--seed", type=int, default=0, help="same seed + same machine = same run on CPU")
    p.add_argument("--workers", type=non_negative_int, default=1, help="data loader worker processes")
    p.add_argument("--weights", help="initial weights to fine-tune from: an evolver checkpoint or a YOLOv5 .pt "
                   "(yolov5s.pt, a run's best.pt), read without running any code from it")
    p.add_argument("--project", default="runs/train", help="runs are saved to PROJECT/NAME")
    p.add_argument("--name", default="exp", help="run name; a number is added if it exists")
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate decay instead of linear")
    p.add_argument("--no-cache", action="store_true", help="do not keep decoded images in RAM")
    p.add_argument("--resume", metavar="LAST_PT", help="continue an interrupted run from its last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_val(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "val", help="validate weights on a dataset", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="COCO-style mAP@0.5 and mAP@0.5:0.95, P and R at the max-F1 confidence, per-class AP.",
    )
    p.add_argument("--weights", required=True, nargs="+",
                   help="an evolver checkpoint (best.pt / last.pt) or a YOLOv5 .pt; several form an ensemble")
    p.add_argument("--data", help="data yaml; default: the built-in synthetic dataset")
    p.add_argument("--img", "--img-size", dest="img_size", type=positive_int, default=640,
                   help="image size (px; rounded up to a multiple of 32)")
    p.add_argument("--batch", "--batch-size", dest="batch_size", type=positive_int, default=32)
    p.add_argument("--conf", type=unit_fraction, default=0.001, help="confidence threshold")
    p.add_argument("--iou", type=unit_fraction, default=0.6, help="NMS IoU threshold")
    p.add_argument("--max-det", type=positive_int, default=300)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=non_negative_int, default=1)
    p.add_argument("--split", "--task", dest="split", default="val", choices=("train", "val", "test"),
                   help="the data yaml's split to validate on (--task is YOLOv5 val.py's name for it)")
    p.add_argument("--augment", action="store_true", help="test-time augmentation (scales 1, 0.83, 0.67; mirror)")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="detect objects in images", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Writes annotated images to PROJECT/NAME and, with --save-txt, PROJECT/NAME/labels/*.txt "
        "(one 'class cx cy w h conf' line per box, normalised).",
    )
    p.add_argument("--weights", required=True, nargs="+",
                   help="evolver checkpoint(s) or YOLOv5 .pt files; several form an ensemble")
    p.add_argument("--source", required=True, help="an image or a folder of images")
    p.add_argument("--img", "--img-size", dest="img_size", type=positive_int, default=640,
                   help="inference size (long side, px; rounded up to a multiple of 32)")
    p.add_argument("--conf", type=unit_fraction, default=0.25, help="confidence threshold")
    p.add_argument("--iou", type=unit_fraction, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=positive_int, default=1000)
    p.add_argument("--augment", action="store_true", help="test-time augmentation")
    p.add_argument("--save-txt", action="store_true", help="also write YOLO-format txt results")
    p.add_argument("--device", default="cpu")
    p.add_argument("--project", default="runs/predict", help="results are saved to PROJECT/NAME")
    p.add_argument("--name", default="exp", help="run name; a number is added if it exists")


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune", help="L1-prune a checkpoint's conv weights", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Zeroes the smallest-magnitude AMOUNT of every Conv2d's weights (permanently), prints the "
        "global sparsity and the val metrics before and after, and saves the pruned checkpoint.",
    )
    p.add_argument("--weights", required=True, help="an evolver checkpoint or a YOLOv5 .pt")
    p.add_argument("--amount", type=open_fraction, default=0.3, help="fraction of each conv's weights to zero")
    p.add_argument("--out", help="pruned checkpoint path; default: WEIGHTS_prunedNN.pt beside it")
    p.add_argument("--data", help="data yaml to validate on; default: the built-in synthetic dataset")
    p.add_argument("--img", "--img-size", dest="img_size", type=positive_int,
                   help="val image size; default: the checkpoint's training size (else 640)")
    p.add_argument("--batch", "--batch-size", dest="batch_size", type=positive_int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=non_negative_int, default=1)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a YOLOv5 .pt into an evolver checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Reads a YOLOv5 v6.0+ checkpoint (yolov5s.pt, a run's best.pt / last.pt / epochN.pt) with "
        "an allowlist unpickler that runs nothing from the file, and writes its EMA weights (else its model's), "
        "class names and anchors in evolver's format, which torch.load(weights_only=True) reads. Campaign "
        "workers then load the converted file, never the pickle. Every command that takes weights also reads "
        "YOLOv5 files directly.",
    )
    p.add_argument("weights", help="the YOLOv5 checkpoint")
    p.add_argument("-o", "--out", required=True, help="the evolver checkpoint to write")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write the synthetic dataset", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", choices=("base", "shifted"), default="base",
                   help="'shifted': the same shapes in other colours, sizes and backgrounds")


def register(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the detector's subcommands to `sub`; returns command -> handler."""
    for add in (_add_train, _add_val, _add_predict, _add_prune, _add_convert, _add_synth):
        add(sub)
    return {"train": run_train, "val": run_val, "predict": run_predict, "prune": run_prune,
            "convert": run_convert, "synth": run_synth}


def _default_data() -> str:
    from yolo.synthetic import default_synthetic_dataset

    return str(default_synthetic_dataset())


def _weights_files(paths: Sequence[str]) -> list[str]:
    return [existing_file(path, "--weights", WEIGHTS_FILE) for path in paths]


def _hyperparameters(path: str | None):
    """--hyp's file read (YOLOv5's defaults without one); a missing or unreadable file is one line."""
    import yaml

    from yolo.hyp import Hyperparameters
    from yolo.yaml_errors import yaml_error_line

    if path is None:
        return Hyperparameters()
    existing_file(path, "--hyp", "a hyperparameter yaml (YOLOv5's hyp.*.yaml format)")
    try:
        return Hyperparameters.from_yaml(path)
    except yaml.YAMLError as err:
        raise ValueError(f"--hyp {yaml_error_line(path, err)}") from None


def _fresh_dir(project: str, name: str) -> Path:
    path = Path(project) / name
    n = 2
    while path.exists():
        path = Path(project) / f"{name}{n}"
        n += 1
    return path


def _resumed_run(args: argparse.Namespace) -> tuple[Callable[[], Any], Path]:
    """(the call that continues --resume's run, its last.pt); a missing file is refused before
    torch is imported."""
    existing_file(args.resume, "--resume", "an interrupted run's last.pt")
    from yolo.train import resume

    return partial(resume, args.resume), Path(args.resume)


def _new_run(args: argparse.Namespace) -> tuple[Callable[[], Any], Path]:
    """(the training the flags ask for, the last.pt it will write). The files named are checked
    first, before torch is imported; the image size is rounded up to a stride multiple."""
    if args.weights:
        _weights_files([args.weights])
    hyp = _hyperparameters(args.hyp)
    from yolo.freeze import parse_freeze
    from yolo.image_size import stride_multiple
    from yolo.train import TrainConfig, train

    config = TrainConfig(
        data=args.data or _default_data(), cfg=args.cfg, epochs=args.epochs, img_size=stride_multiple(args.img_size),
        batch_size=args.batch_size, device=args.device, seed=args.seed, workers=args.workers,
        save_dir=str(_fresh_dir(args.project, args.name)), weights=args.weights,
        cos_lr=args.cos_lr, cache_images=not args.no_cache, progress=not args.quiet,
        freeze=parse_freeze(args.freeze), sync_bn=args.sync_bn,
    )
    return partial(train, config, hyp), Path(config.save_dir) / "weights" / "last.pt"


def run_train(args: argparse.Namespace) -> int:
    """Train in this process, launch one process per GPU (`--device 0,1`), or, under torchrun,
    train this rank (`python -m torch.distributed.run --nproc_per_node 2 -m evolver train ...`)."""
    run, last = _resumed_run(args) if args.resume else _new_run(args)
    from yolo.distributed import rank_from_env

    try:
        result = run()
    except KeyboardInterrupt:  # Ctrl-C: one line saying how to go on, no traceback
        hint = f"; `evolver train --resume {last}` continues from its last finished epoch" if last.exists() else ""
        print(f"evolver train: interrupted{hint}", file=sys.stderr)
        return 130
    if not rank_from_env().is_main:
        return 0  # rank 0 reports for the run
    m = result.metrics
    print(
        f"\n{result.epochs_completed} epochs in {result.seconds:.1f}s  "
        f"P {m['metrics/precision']:.3f}  R {m['metrics/recall']:.3f}  "
        f"mAP@0.5 {m['metrics/mAP_0.5']:.3f}  mAP@0.5:0.95 {m['metrics/mAP_0.5:0.95']:.3f}  "
        f"fitness {result.fitness:.4f} (best {result.best_fitness:.4f} at epoch {result.best_epoch + 1})"
    )
    print(f"weights: {result.weights}\nresults: {result.save_dir / 'results.csv'}")
    return 0


def _val_loader(data, split: str, img_size: int, batch_size: int, workers: int, hyp):
    """The loader of a dataset split (a `DataConfig`'s), read as training's validation reads it;
    a split the yaml lacks is a ValueError, which `main` prints as one line."""
    from yolo.evaluate import split_loader

    loader, index = split_loader(data, split, img_size, batch_size, hyp, workers=workers)
    print(f"{split}: {index.summary()}")
    return loader


def _data_config(path: str | None):
    """The --data yaml (the built-in synthetic dataset without one), read but not yet scanned."""
    from yolo.data import load_data_config

    return load_data_config(path or _default_data())


def _metrics_line(result) -> str:
    m = result.metrics
    return (f"P {m.precision:.3f}  R {m.recall:.3f}  mAP@0.5 {m.map50:.3f}  mAP@0.5:0.95 {m.map:.3f}  "
            f"fitness {result.fitness:.4f}  ({result.images_per_second:.1f} img/s)")


def run_val(args: argparse.Namespace) -> int:
    weights = _weights_files(args.weights)  # before torch is imported
    from yolo.device import select_device
    from yolo.ensemble import load_detector
    from yolo.evaluate import checkpoint_hyp, require_same_classes
    from yolo.image_size import stride_multiple
    from yolo.loss import DetectionLoss
    from yolo.metrics import ap_table
    from yolo.val import inference_copy, validate

    device = select_device(args.device)
    img_size = stride_multiple(args.img_size)
    data = _data_config(args.data)
    data.split_files(args.split)  # a split the yaml lacks, before any weights are read
    model, checkpoints = load_detector(weights, device, augment=args.augment)
    for path, checkpoint in zip(args.weights, checkpoints):  # before the images are scanned
        require_same_classes(path, checkpoint, data)
    hyp = checkpoint_hyp(checkpoints[0])
    loader = _val_loader(data, args.split, img_size, args.batch_size, args.workers, hyp)
    # Val losses describe one model's plain forward pass: none for an ensemble or TTA.
    single = len(checkpoints) == 1 and not args.augment
    loss_fn = DetectionLoss.from_model(model, hyp, img_size) if single else None
    result = validate(inference_copy(model), loader, nc=data.nc, names=data.names, device=device, loss_fn=loss_fn,
                      conf_threshold=args.conf, iou_threshold=args.iou, max_det=args.max_det, progress=True)
    print(ap_table(result.metrics, data.names))
    print(_metrics_line(result))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    weights = _weights_files(args.weights)  # before torch is imported
    from yolo.device import select_device
    from yolo.image_size import stride_multiple
    from yolo.predict import list_images, predict

    select_device(args.device)  # a GPU that is not there, before anything is read
    list_images(args.source)  # no source, or no images in it, before the weights are read
    img_size = stride_multiple(args.img_size)
    out_dir = _fresh_dir(args.project, args.name)
    results = predict(weights, args.source, img_size=img_size, conf=args.conf, iou=args.iou,
                      augment=args.augment, save_txt=args.save_txt, out_dir=out_dir, max_det=args.max_det,
                      device=args.device)
    for r in results:
        counts: dict[str, int] = {}
        for det in r.detections:
            counts[det.name] = counts.get(det.name, 0) + 1
        found = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no detections"
        print(f"{r.source} ({r.width}x{r.height}): {found}")
    print(f"{len(results)} image(s); results saved to {out_dir}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    existing_file(args.weights, "--weights", WEIGHTS_FILE)  # before torch is imported
    from yolo.checkpoint import load_model
    from yolo.device import select_device
    from yolo.evaluate import checkpoint_hyp, require_same_classes
    from yolo.image_size import stride_multiple
    from yolo.prune import conv_sparsity, prune_checkpoint, pruned_path
    from yolo.val import inference_copy, validate

    device = select_device(args.device)
    data = _data_config(args.data)
    model, checkpoint = load_model(args.weights, device)
    require_same_classes(args.weights, checkpoint, data)
    img_size = stride_multiple(args.img_size or int(checkpoint.train_config.get("img_size", 640)))
    hyp = checkpoint_hyp(checkpoint)
    loader = _val_loader(data, "val", img_size, args.batch_size, args.workers, hyp)
    zeros, total = conv_sparsity(model)
    before = validate(inference_copy(model), loader, nc=data.nc, names=data.names, device=device)
    out, report = prune_checkpoint(args.weights, args.amount, args.out or pruned_path(args.weights, args.amount))
    pruned, _ = load_model(out, device)
    after = validate(inference_copy(pruned), loader, nc=data.nc, names=data.names, device=device)
    print(report.summary())
    print(f"before  sparsity {zeros / max(total, 1):.3f}  {_metrics_line(before)}")
    print(f"after   sparsity {report.sparsity:.3f}  {_metrics_line(after)}")
    print(f"pruned weights: {out}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    existing_file(args.weights, "", "a YOLOv5 .pt file (yolov5s.pt, a YOLOv5 run's best.pt)")
    from yolo.yolov5_weights import convert_yolov5_checkpoint

    try:
        out, checkpoint = convert_yolov5_checkpoint(args.weights, args.out)
    except ValueError:
        if _is_evolver_checkpoint(args.weights):
            raise ValueError(f"{args.weights} is already an evolver checkpoint: it needs no conversion "
                             "(every command takes it as it is)") from None
        raise
    config = checkpoint.model_config
    print(f"{args.weights} -> {out}: {config['name']}, {config['nc']} classes, "
          f"{len(checkpoint.model_state)} tensors, anchors {config['anchors']}")
    return 0


def _is_evolver_checkpoint(path: str) -> bool:
    """Whether `path` reads as one of our own checkpoints (asked once a conversion has failed)."""
    from yolo.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path).origin == "evolver"
    except (ValueError, OSError):
        return False


def run_synth(args: argparse.Namespace) -> int:
    from yolo.synthetic import STYLES, generate_synthetic_dataset

    print(generate_synthetic_dataset(Path(args.out), seed=args.seed, style=STYLES[args.style]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m yolo COMMAND …`: the detector's commands alone."""
    parser = argparse.ArgumentParser(prog="python -m yolo", description="The detector's commands:\n" + EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    handlers = register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
