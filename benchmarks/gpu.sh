#!/usr/bin/env bash
# The benchmarks on one GPU machine that has PyTorch, Lightning and timm but no
# internet, no geospatial stack and no data: the label-efficiency table from
# ImageNet weights (all algorithms, 2 and 4 labels per class, 3 seeds) at a larger
# budget than the CPU's, and the views and mapping benchmarks on the GPU.
#
#   bash benchmarks/gpu.sh pack          # here: wheels, data, weights -> .gpu/parts/
#   bash benchmarks/gpu.sh run OUT       # there: install, run, tables into OUT
#   bash benchmarks/gpu.sh run OUT tiny  # a smoke run of every stage (minutes, CPU)
#
# What travels is about 220 MB: the wheels geossl needs beyond that machine's own
# packages (rasterio, pyogrio and pyproj are most of it), EuroSAT RGB packed at
# 32 px, the converted Lite0 weights, the EuroSAT-MS sample and the 18SVG scene.
# `pack` cuts it into parts of at most 58 MiB (.gpu/parts/part-NN), so that a
# machine that takes 64 MiB per call gets one part per call and keeps the parts
# it has (.gpu is ignored by git): calls 1 to N-1 carry part 00 to N-2 and run
# `true`, one straight after the other (an idle machine goes back within a
# minute); call N carries the last part and runs `bash benchmarks/gpu.sh run $OUT`.
#
# Sized for about 9 minutes on one H200 (not yet measured there): views and
# mapping about 2 minutes (mapping a 5,490 px tile), then the table, 8 runs at a
# time on the one GPU, for at most LE_MINUTES (6); every finished run is in
# OUT/label_efficiency/runs.csv when that time is up. Settings by environment:
# PYTHON (python3), DEVICE (cuda), LE_MINUTES, LE_WORKERS (8), LE_STEPS (1000),
# LE_BATCH (16), LE_MU (7).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# A path to an interpreter (a venv's) made absolute: the stages run in benchmarks/.
[[ $PYTHON == */* ]] && PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
GPU=.gpu
WHEELS="affine docstring_parser geopandas jsonargparse kornia kornia_rs lightly
pyogrio pyproj rasterio segmentation_models_pytorch shapely torchgeo typeshed_client"
PLATFORMS="manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64
manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64"

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
    (cd benchmarks && ../.venv/bin/python - "$stage") <<'EOF'
import shutil
import sys
from pathlib import Path

from report import SHARED_DATA, pack_eurosat_rgb
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

stage = Path('..') / sys.argv[1]
pack_eurosat_rgb(SHARED_DATA / 'eurosat-rgb', 32, stage / 'data' / 'eurosat-rgb-32.pkl.gz')
shutil.copy(lite0_weights(LITE0_WEIGHTS), stage)
for name in ('eurosat-ms-sample', 'sentinel2-scene-18SVG-20160112'):
    shutil.copytree(SHARED_DATA / name, stage / 'data' / name)
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
    export GEOSSL_SHARED_DATA=$PWD/$unpacked/data
    mkdir -p ~/.cache/geossl
    cp "$unpacked"/tf_efficientnet_lite0-imagenet.pth ~/.cache/geossl/
    local device=${DEVICE:-cuda} views=() mapping=(--tile_size 5490)
    local table=(--steps "${LE_STEPS:-1000}" --batch_size "${LE_BATCH:-16}"
        --mu "${LE_MU:-7}" --workers "${LE_WORKERS:-8}")
    local minutes=${LE_MINUTES:-6}
    if [[ $tiny == tiny ]]; then
        views=(--repeats 1)
        mapping=(--tile_size 600 --strips 1)
        table=(--steps 4 --val_every 2 --log_every 1 --batch_size 4 --mu 2
            --workers 2 --seeds 0 --labels_per_class 2
            --algorithms supervised fixmatch)
    fi
    "$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' | tee "$out/machine.txt"
    (cd benchmarks && "$PYTHON" views.py --device "$device" --output "$out" "${views[@]}")
    (cd benchmarks && "$PYTHON" mapping.py --device "$device" --output "$out" \
        --workdir /tmp/geossl-mapping "${mapping[@]}")
    # Stopped at its time limit, the table keeps every run finished by then.
    (cd benchmarks && timeout "${minutes}m" "$PYTHON" label_efficiency.py --pretrained \
        --data "$GEOSSL_SHARED_DATA/eurosat-rgb-32.pkl.gz" \
        --output "$out/label_efficiency" "${table[@]}") || echo "label_efficiency: stopped ($?)"
    cat "$out/label_efficiency/runs.csv" 2>/dev/null || true
}

case ${1:-} in
    pack) pack ;;
    run) run "${2:?run OUT [tiny]: OUT is the folder for the tables}" "${3:-}" ;;
    *) echo "usage: gpu.sh pack | gpu.sh run OUT [tiny]" >&2; exit 2 ;;
esac
