#!/usr/bin/env bash
# Remakes tests/fixtures/yolov5_evolve/: files that YOLOv5's own `train.py --evolve` writes, for the
# tests of Evolver's import of YOLOv5 evolution runs (evolver/exchange.py). Nothing of YOLOv5's code
# enters this repository: YOLOv5 runs from the throwaway venv of benchmarks/reference_yolov5.sh
# (built here if missing), in a scratch folder, CPU, tiny (yolov5n, COCO128, 64 px, 1 epoch per trial).
#
#   benchmarks/yolov5_evolve_fixture.sh [OUT]                 # evolve.csv from yolov5 7.0.14 (pip)
#   YOLOV5_MASTER=/path/to/yolov5 benchmarks/yolov5_evolve_fixture.sh [OUT]
#                                                             # + evolve_population.yaml from master
# OUT defaults to tests/fixtures/yolov5_evolve. The files are copied byte for byte as YOLOv5 wrote
# them; a run's other files (log, hyp_evolve.yaml) are left in the scratch folder it names.
#
# Two writers, because they are two different programs:
# - Default: the `yolov5` pip package 7.0.14 (YOLOv5 v7.0 packaged), whose train.py --evolve is the
#   single-parent mutation loop: one trial per generation, 6 generations -> evolve.csv with 6 rows.
#   Its print_mutation (utils/general.py) writes evolve.csv exactly as master's does (the same
#   '%20s,' header and '%20.5g,' values); it has no population GA, so no evolve_population.yaml.
# - YOLOV5_MASTER: a git checkout of github.com/ultralytics/yolov5 master with the population GA
#   (PR #11348: `--evolve_population` in train.py), e.g. `git clone` elsewhere and copy it here;
#   this script fetches nothing. The checkout is copied to the scratch folder, where the only
#   change is `pop_size = 50` -> `pop_size = $POP_SIZE` (default 6) in train.py, so that
#   `--evolve 2` is 2 x 6 trials; generation 1 writes evolve_population.yaml (gen1number0..5),
#   evolve.csv gets 12 rows. Master also imports the `ultralytics` package, which the venv has.
#   This mode has not been run on this machine (no master checkout was reachable when the
#   fixtures were made); see tests/fixtures/yolov5_evolve/README.md for what made the files.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${YOLOV5_VENV:-/tmp/yolov5-reference-venv}
SHARED=${EVOLVER_SHARED:-$REPO/../shared}
OUT=$(realpath -m "${1:-$REPO/tests/fixtures/yolov5_evolve}")
POP_SIZE=${POP_SIZE:-6}

[ -f "$VENV/.reference-venv-complete" ] || YOLOV5_VENV="$VENV" "$REPO/benchmarks/reference_yolov5.sh" venv
mkdir -p ~/.config/Ultralytics
[ -f ~/.config/Ultralytics/Arial.ttf ] || cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ~/.config/Ultralytics/Arial.ttf
for needed in "$SHARED/datasets/coco128/images/train2017" "$SHARED/weights/yolov5n.pt"; do
  [ -e "$needed" ] || { echo "missing $needed (set EVOLVER_SHARED to the shared folder)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/yolov5-evolve-fixture.XXXXXX)
# YOLOv5 writes a label cache beside the labels: train on a copy, not on shared/.
cp -r "$SHARED/datasets/coco128" "$WORK/coco128"
printf 'path: %s\ntrain: images/train2017\nval: images/train2017\n' "$WORK/coco128" > "$WORK/coco128.yaml"
sed -n '/^nc:/,$p' "$SHARED/datasets/coco128/coco128.yaml" >> "$WORK/coco128.yaml"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 YOLOv5_AUTOINSTALL=False  # as benchmarks/reference_tools.py runs it
COMMON=(--data "$WORK/coco128.yaml" --weights "$SHARED/weights/yolov5n.pt" --img 64 --epochs 1 --batch-size 16
        --device cpu --workers 0 --noplots --project "$WORK/runs" --name evolve)

if [ -n "${YOLOV5_MASTER:-}" ]; then
  grep -q 'evolve_population' "$YOLOV5_MASTER/train.py" \
    || { echo "$YOLOV5_MASTER/train.py has no population GA (--evolve_population): not YOLOv5 master" >&2; exit 1; }
  mkdir "$WORK/yolov5-master"
  (cd "$YOLOV5_MASTER" && tar --exclude=.git --exclude=runs -cf - .) | tar -xf - -C "$WORK/yolov5-master"
  [ "$(grep -c '^        pop_size = 50$' "$WORK/yolov5-master/train.py")" = 1 ] \
    || { echo "train.py: expected exactly one line 'pop_size = 50' to lower" >&2; exit 1; }
  sed -i "s/^        pop_size = 50$/        pop_size = $POP_SIZE/" "$WORK/yolov5-master/train.py"
  (cd "$WORK/yolov5-master" && "$VENV/bin/python" train.py "${COMMON[@]}" --evolve 2 \
    --evolve_population data/hyps) > "$WORK/train.log" 2>&1 || { tail -30 "$WORK/train.log" >&2; exit 1; }
  WROTE=(evolve.csv evolve_population.yaml)
else
  TRAIN=$("$VENV/bin/python" -c 'import os, yolov5; print(os.path.join(os.path.dirname(yolov5.__file__), "train.py"))')
  (cd "$WORK" && "$VENV/bin/python" "$TRAIN" "${COMMON[@]}" --evolve 6) > "$WORK/train.log" 2>&1 \
    || { tail -30 "$WORK/train.log" >&2; exit 1; }
  WROTE=(evolve.csv)
fi

mkdir -p "$OUT"
for name in "${WROTE[@]}"; do cp "$WORK/runs/evolve/$name" "$OUT/$name"; done
echo "wrote ${WROTE[*]} to $OUT (run folder and log: $WORK)"
