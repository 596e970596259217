#!/usr/bin/env bash
# The reference implementation beside ours on this machine, like with like: YOLOv5 v7.0 (the
# `yolov5` pip package 7.0.14). What is measured is in benchmarks/reference_finetune.py: both
# fine-tune YOLOv5's yolov5n.pt on vehicles-openimages (5 epochs, 320 px, batch 16, CPU, seeds
# 0-2, runs alternating) and are scored on its test split by the same evaluator; plus YOLOv5's
# from-scratch COCO128 speed case. The figures go to benchmarks/results/reference_yolov5.json.
#
#   benchmarks/reference_yolov5.sh [RUN OPTIONS]   # build the venv if needed, run (~80 min on 2 cores), print
#   benchmarks/reference_yolov5.sh report          # print the table again from the ledger
#   benchmarks/reference_yolov5.sh venv            # only build the venv
# RUN OPTIONS go to `python -m benchmarks.reference_finetune run` (--seeds, --only, --resume, --keep).
#
# The venv is throwaway, in /tmp: nothing of YOLOv5 enters this repository. It is built from the
# default package registries only, in one resolution: torch 2.13.0 (the version ours runs on) with
# torchvision 0.28.0, from PyPI. PyPI's torchvision is a CUDA build that cannot load its ops beside
# the local `+cpu` torch wheel, so pip runs `--isolated` (no local wheel folder, no extra index)
# under the machine's pip constraints (FIELD-NOTES); these CUDA builds run fine on CPU (~3 GB of
# downloads, once). Every requirement of yolov5 7.0.14 is installed with it, with the caps that
# release needs on a 2026 resolver: setuptools < 81 (YOLOv5 imports pkg_resources; torch 2.13
# needs >= 77.0.3), numpy < 2 (its AP integration calls np.trapz, which numpy 2.4 removed) and
# pillow < 10 (its box labels call FreeTypeFont.getsize, which Pillow 10 removed).
# YOLOv5 downloads a font for its plots: a local DejaVu font stands in, so nothing is fetched.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${YOLOV5_VENV:-/tmp/yolov5-reference-venv}
BUILT="$VENV/.reference-venv-complete"

build_venv() {
  rm -rf "$VENV"  # a half-built venv (interrupted download) is rebuilt from scratch
  python3 -m venv "$VENV"
  local pins="$VENV/pins.txt" constraints
  printf 'torch==2.13.0\ntorchvision==0.28.0\nsetuptools>=77.0.3,<81\nnumpy<2\npillow<10\n' > "$pins"
  constraints=$(python3 -m pip config list 2>/dev/null | sed -n "s/^global\.constraint='\(.*\)'$/\1/p" | head -1)
  [ -n "$constraints" ] && [ -f "$constraints" ] || constraints=""
  PIP_FIND_LINKS= "$VENV/bin/pip" install -q --isolated --disable-pip-version-check --timeout 180 \
    ${constraints:+-c "$constraints"} -c "$pins" \
    torch==2.13.0 torchvision==0.28.0 yolov5==7.0.14 "setuptools>=77.0.3,<81" "numpy<2" "pillow<10"
  "$VENV/bin/pip" check --disable-pip-version-check
  (cd /tmp && YOLOv5_AUTOINSTALL=False "$VENV/bin/python" -W ignore -c \
    "import torch, torchvision, yolov5.train, yolov5.val; torchvision.ops.nms(torch.rand(2, 4), torch.rand(2), 0.5); print('yolov5', yolov5.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)")
  touch "$BUILT"
}

case "${1:-run}" in
  report) shift; exec "$REPO/.venv/bin/python" -m benchmarks.reference_finetune report "$@" ;;
  venv) build_venv; exit ;;
  run) [ $# -gt 0 ] && shift ;;
esac
[ -f "$BUILT" ] || build_venv
mkdir -p ~/.config/Ultralytics
[ -f ~/.config/Ultralytics/Arial.ttf ] || cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ~/.config/Ultralytics/Arial.ttf
cd "$REPO"
exec .venv/bin/python -m benchmarks.reference_finetune run --yolov5-python "$VENV/bin/python" "$@"
