#!/usr/bin/env bash
# The benchmarks on one GPU machine that has PyTorch, Lightning, timm and
# torchmetrics but no internet, no geospatial stack and no data: the full-scale
# teacher-student table (EuroSAT RGB with its tiles' places, docs/teacher-student.md)
# and the label-efficiency table from ImageNet weights, at a larger budget than the
# CPU's. Both need only the learning core, which imports no geospatial library.
#
#   bash benchmarks/gpu.sh pack          # here: wheels, data, weights -> .gpu/parts/
#   bash benchmarks/gpu.sh run OUT       # there: install, run, tables into OUT
#   bash benchmarks/gpu.sh run OUT tiny  # a smoke run of both tables (minutes, CPU)
#
# What travels is about 86 MB: the wheels the core needs beyond that machine's own
# packages (Kornia and kornia_rs, 7 MB), EuroSAT RGB packed at 32 px with its places
# (60 MB) and the converted Lite0 weights (19 MB). `pack` cuts it into parts of at
# most 58 MiB (.gpu/parts/part-NN), so that a machine that takes 64 MiB per call gets
# one part per call and keeps the parts it has (.gpu is ignored by git): call 1
# carries part 00 and runs `true`; call 2, straight after (an idle machine goes back
# within a minute), carries part 01 and runs `bash benchmarks/gpu.sh run $OUT`.
# The mapping and views benchmarks read GeoTIFFs, so they stay on the CPU: the
# geospatial wheels they need are another 130 MB.
#
# Sized to end within the device's 10 minutes a call whatever each stage takes (not
# yet measured on a GPU): the network alone in both memory layouts (memory_format.py,
# at most 2 minutes, about one), the teacher's budget curve (teacher_student.py
# --curve: FixMatch and ST-FixMatch at 1,000 and 4,000 steps and FixMatch at equal
# time) for at most TS_MINUTES (5), then the label-efficiency table for at most
# LE_MINUTES (2), several runs at a time on the one GPU; every run finished by then is
# in OUT/<table>/runs.csv. Settings by environment: PYTHON (python3), WORKERS (8),
# STEPS (1000), BATCH (16), MU (7), TS_MINUTES, LE_MINUTES. `run OUT tiny` passes in
# a virtualenv that holds only the packages that machine lists and the carried
# wheels.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# A path to an interpreter (a venv's) made absolute: the stages run in benchmarks/.
[[ $PYTHON == */* ]] && PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
GPU=.gpu
PACKED=eurosat-rgb-32-located.pkl.gz
WHEELS="kornia kornia_rs"
PLATFORMS="manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64"

pack() {
    local stage=$GPU/stage
    rm -rf "$stage" "$GPU/parts"
    mkdir -p "$stage/wheels" "$stage/data" "$GPU/parts"
    local platforms=() name version
    for platform in $PLATFORMS; do platforms+=(--platform "$platform"); done
    for name in $WHEELS; do
        # The versions of geossl's own environment, as its tests ran them.
        version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
        .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: \
            --python-version 3.12 --implementation cp "${platforms[@]}" \
            -d "$stage/wheels" "$name==$version"
    done
    (cd benchmarks && ../.venv/bin/python - "$stage" "$PACKED") <<'EOF'
import shutil
import sys
from pathlib import Path

from report import EUROSAT_LOCATIONS, SHARED_DATA, pack_eurosat_rgb
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

stage, packed = Path('..') / sys.argv[1], sys.argv[2]
pack_eurosat_rgb(
    SHARED_DATA / 'eurosat-rgb', 32, stage / 'data' / packed, EUROSAT_LOCATIONS
)
shutil.copy(lite0_weights(LITE0_WEIGHTS), stage)
EOF
    tar -cf - -C "$stage" . | split -b 58m -d - "$GPU/parts/part-"
    rm -rf "$stage"
    ls -l "$GPU/parts"
}

run() {
    local out=$1 tiny=${2:-}
    mkdir -p "$out"
    local unpacked=$GPU/unpacked site=$GPU/site
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    cat "$GPU"/parts/part-* | tar -xf - -C "$unpacked"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$site" "$unpacked"/wheels/*.whl
    export PYTHONPATH=$PWD/$site:$PWD PYTHONUNBUFFERED=1
    mkdir -p ~/.cache/geossl
    cp "$unpacked"/tf_efficientnet_lite0-imagenet.pth ~/.cache/geossl/
    local data=$PWD/$unpacked/data/$PACKED
    local budget=(--batch_size "${BATCH:-16}" --mu "${MU:-7}" --workers "${WORKERS:-8}")
    # The teacher's budget curve (1,000 and 4,000 steps, FixMatch at equal time).
    local teacher=(--curve) efficiency=(--pretrained --steps "${STEPS:-1000}")
    local ts_minutes=${TS_MINUTES:-5} le_minutes=${LE_MINUTES:-2}
    if [[ $tiny == tiny ]]; then
        budget=(--val_every 2 --log_every 1 --batch_size 4 --mu 2
            --workers 2 --seeds 0 --labels_per_class 2)
        teacher=(--steps 4 --splits random --runs FixMatch ST-FixMatch)
        efficiency=(--pretrained --steps 4 --algorithms supervised fixmatch)
    fi
    "$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' | tee "$out/machine.txt"
    # Whether channels-last weights are faster on this GPU (memory_format=auto
    # leaves the GPU channels-first until this says otherwise): about a minute.
    (cd benchmarks && timeout 2m "$PYTHON" memory_format.py --output "$out") ||
        echo "memory_format: stopped ($?)"
    # Each table, stopped at its time limit, keeps every run finished by then.
    (cd benchmarks && timeout "${ts_minutes}m" "$PYTHON" teacher_student.py \
        --data "$data" --output "$out/teacher_student" "${budget[@]}" "${teacher[@]}") ||
        echo "teacher_student: stopped ($?)"
    (cd benchmarks && timeout "${le_minutes}m" "$PYTHON" label_efficiency.py \
        --data "$data" --output "$out/label_efficiency" "${budget[@]}" "${efficiency[@]}") ||
        echo "label_efficiency: stopped ($?)"
    cat "$out"/*/runs.csv 2>/dev/null || true
}

case ${1:-} in
    pack) pack ;;
    run) run "${2:?run OUT [tiny]: OUT is the folder for the tables}" "${3:-}" ;;
    *) echo "usage: gpu.sh pack | gpu.sh run OUT [tiny]" >&2; exit 2 ;;
esac
