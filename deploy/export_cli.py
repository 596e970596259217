"""`evolver export`: flags -> one `export_weights` call (and an optional parity check).

    evolver export --weights best.pt --include onnx,engine,wts --img 640 [--batch N] [--dynamic] [--half]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.formats import FORMATS, parse_formats
from yolo.flag_values import WEIGHTS_FILE, existing_file, positive_int


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export trained weights to ONNX / TensorRT / .wts",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Export an evolver checkpoint. ONNX: input 'images' [B,3,H,W] float32 0-1, output 'output0' "
        "[B,N,5+nc] (xywh pixels, objectness, class scores; NMS left to the consumer). 'engine' needs TensorRT "
        "and an NVIDIA GPU and is built from the ONNX.",
    )
    p.add_argument("--weights", required=True, help="checkpoint to export (e.g. runs/train/exp/weights/best.pt)")
    p.add_argument("--include", default="onnx", help=f"comma-separated formats from: {','.join(FORMATS)}")
    p.add_argument("--img", "--img-size", dest="img_size", type=positive_int, nargs="+", default=[640],
                   help="image size: one number (square) or height width (rounded up to multiples of 32)")
    p.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=1,
                   help="static batch (with --dynamic: the engine profile's largest batch)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and image size axes in the ONNX")
    p.add_argument("--half", action="store_true", help="FP16 weights and compute inside the graph (input stays float32)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (12-17)")
    p.add_argument("--workspace", type=float, default=4.0, help="TensorRT builder workspace, GiB")
    p.add_argument("--out", default=None, help="output folder (default: beside the weights)")
    p.add_argument("--parity-images", default=None,
                   help="folder of images: check onnxruntime against torch on them after exporting")
    p.add_argument("--parity-count", type=positive_int, default=8, help="how many images of --parity-images to use")


def run_export(args: argparse.Namespace) -> int:
    formats = parse_formats(args.include)  # the flags first, before the exporters import torch
    if len(args.img_size) > 2:
        raise ValueError(f"--img takes one or two numbers, got {args.img_size}")
    existing_file(args.weights, "--weights", WEIGHTS_FILE)
    if args.parity_images and not Path(args.parity_images).is_dir():
        raise ValueError(f"--parity-images {args.parity_images} is not a folder; it takes a folder of images")
    from deploy.export import check_parity, coco_like_images, export_weights
    from yolo.image_size import stride_multiple

    sides = [stride_multiple(side) for side in args.img_size]
    size = sides[0] if len(sides) == 1 else (sides[0], sides[1])
    files = export_weights(args.weights, formats, size, args.batch, args.dynamic, args.half, args.out,
                           args.opset, args.workspace)
    for item in files:
        print(f"{item.format:6s} {item.path}  {item.size / 1e6:.1f} MB  sha256 {item.sha256}")
    onnx_file = next((f.path for f in files if f.format == "onnx"), None)
    if args.parity_images and onnx_file is not None:
        images = coco_like_images(args.parity_images, args.parity_count)
        report = check_parity(onnx_file, args.weights, images)
        print(report.summary())
        return 0 if report.passed else 1
    return 0


def register(sub: argparse._SubParsersAction) -> dict:
    """`evolver export` (found by the dispatcher through the `evolver.commands` entry point)."""
    add_subcommand(sub)
    return {"export": run_export}
