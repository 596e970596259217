#!/usr/bin/env bash
# The reference implementation's speed on this machine, measured the way benchmarks/speed.py
# measures ours: YOLOv5 v7.0 (the `yolov5` pip package 7.0.14), yolov5n from scratch on COCO128
# (train = val = its 128 images), 320 px, batch 16, CPU, 3 epochs. Read the per-epoch train and
# val times from its progress lines (128 images each). Run ours right after, on the same quiet
# machine: `.venv/bin/python -m benchmarks.speed --only yolov5n@320 --epochs 3`.
#
# It builds a throwaway venv in /tmp from the default package registries only (the ones these
# machines reach): torch 2.13.0 — the version ours runs on, so the comparison is like with like —
# with torchvision 0.28.0. PyPI's torchvision is a CUDA build that cannot load its ops beside the
# local `+cpu` torch wheel, so that pair is installed with `--isolated` (no local wheel folder) under
# the machine's pip constraints (FIELD-NOTES); both run fine on CPU (~3 GB of downloads, once).
# Later installs are pinned to that pair. Nothing of YOLOv5 enters this repository. YOLOv5 downloads a font for its plots: a local
# DejaVu font stands in, so nothing is fetched at run time.
set -euo pipefail
SHARED=${EVOLVER_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
VENV=/tmp/yolov5-reference-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  PINS="$VENV/pins.txt"
  printf 'torch==2.13.0\ntorchvision==0.28.0\n' > "$PINS"
  MACHINE_CONSTRAINTS=$(python3 -m pip config get global.constraint 2>/dev/null || true)
  PIP_FIND_LINKS= "$VENV/bin/pip" install -q --isolated ${MACHINE_CONSTRAINTS:+-c "$MACHINE_CONSTRAINTS"} \
    -c "$PINS" torch==2.13.0 torchvision==0.28.0
  "$VENV/bin/pip" install -q -c "$PINS" --no-deps yolov5==7.0.14 "ultralytics==8.0.230" roboflow sahi "huggingface_hub==0.20.3" \
    requests_toolbelt python-dotenv filetype pillow-avif-plugin
  "$VENV/bin/pip" install -q -c "$PINS" matplotlib pandas seaborn scipy psutil thop gitpython requests pillow fire \
    "setuptools<70" tensorboard opencv-python-headless
fi
mkdir -p ~/.config/Ultralytics
[ -f ~/.config/Ultralytics/Arial.ttf ] || cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ~/.config/Ultralytics/Arial.ttf
DATA=$(mktemp --suffix=.yaml)
sed "s#^path: .*#path: $SHARED/datasets/coco128#" "$SHARED/datasets/coco128/coco128.yaml" > "$DATA"
YOLO=$("$VENV/bin/python" -c "import yolov5, os; print(os.path.dirname(yolov5.__file__))")
YOLOv5_AUTOINSTALL=False "$VENV/bin/python" "$YOLO/train.py" --data "$DATA" --cfg "$YOLO/models/yolov5n.yaml" \
  --weights '' --img 320 --batch 16 --epochs 3 --device cpu --noplots --project "$(mktemp -d)" --workers 8 2>&1 \
  | tr '\r' '\n' | grep -E "100%" | awk '!seen[$0]++' || true
