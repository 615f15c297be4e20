"""``geossl map`` speed and memory: the real 18SVG scene and a full 10,980 px tile.

Two rasters:

* the real 18SVG scene as shipped: 13 band files at 10, 20 and 60 m (1,942 x 1,931
  px at 10 m);
* a full Sentinel-2 tile, 10,980 x 10,980 px, 13 bands in one tiled DEFLATE GeoTIFF,
  made from the real scene's bands (resampled to 10 m) mirrored across the tile. It
  is written once into ``--workdir`` and reused.

Each is mapped by the ``geossl map`` command in a process of its own (peak resident
memory from the operating system, wall time, and the rate ``geossl map`` reports);
the full tile also with a region of interest, a hexagon of ``--roi_share`` (5 %) of
the tile in its middle, given in WGS 84, on the tile's grid and cropped to it. The bound
is the model alone: the same model's forward passes, in inference mode, over the
same windows in the same batches, read beforehand from the same raster; its rate is
the raster's pixels over (windows x median seconds per window).

The model is the demo's: a ResNet-18 for 13 bands and 32 x 32 chips (untrained
unless ``--checkpoint`` is given: speed and memory do not depend on the weights).

Prints a Markdown table and writes ``results/mapping.csv`` and
``results/mapping.json``.

With ``--compare``: the 18SVG scene mapped by ``geossl map`` as it is and as it was
at ``--before`` (in one run, each in a process of its own), with a ResNet-18 and a
``tf_efficientnet_lite0``, beside each model alone in PyTorch and exported to ONNX
in onnxruntime; ``results/mapping_compare.csv`` and ``.json``.

    .venv/bin/python benchmarks/mapping.py [--checkpoint CKPT] [--workdir DIR]
    .venv/bin/python benchmarks/mapping.py --compare [--before 6df83aa]
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import rasterio
import shapely
import torch
from rasterio.transform import from_origin
from report import (
    REPOSITORY,
    RESULTS,
    SCENE,
    default_device,
    export_tree,
    markdown,
    median_seconds,
    save,
    with_geossl_from,
)
from tqdm import tqdm

from geossl.data.scene_files import Scene, find_scenes
from geossl.data.scene_raster import SceneRaster
from geossl.inference.checkpoint import load_task
from geossl.inference.engines import window_probabilities
from geossl.inference.scene_mapper import SceneMapper
from geossl.inference.windows import StripDataset, WindowGrid
from geossl.tasks.semi_supervised import SemiSupervisedTask

BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09']
BANDS += ['B10', 'B11', 'B12']
#: The side of a Sentinel-2 tile at 10 m.
TILE = 10_980


def demo_checkpoint(path: Path, model: str = 'resnet18') -> Path:
    """An untrained model shaped like the demo's, saved as ``geossl fit`` saves it.

    Args:
        path: where to write it.
        model: its timm backbone.

    Returns:
        ``path``.
    """
    torch.manual_seed(0)
    task = SemiSupervisedTask(
        num_classes=6,
        in_channels=13,
        algorithm='supervised',
        model=model,
        chip_size=32,
        data={'band_names': BANDS},
    )
    task.views.set_statistics(torch.full((13,), 1000.0), torch.full((13,), 500.0))
    state = {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}
    torch.save(state, path)
    return path


def full_tile(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` 13-band tile of the real 18SVG bands, mirrored.

    Args:
        path: where to write it (kept if it is already there).
        size: its height and width in pixels.

    Returns:
        ``path``.
    """
    if path.exists():
        return path
    (scene,) = find_scenes(SCENE)
    source = SceneRaster(scene, BANDS).read_chip(scene.bounds)[0].astype(np.uint16)
    height, width = source.shape[1:]
    # Reflected indices: 0 .. n-1, n-1 .. 0, 0 .. n-1, ...
    columns = np.arange(size) % (2 * width)
    columns = np.where(columns < width, columns, 2 * width - 1 - columns)
    profile = {
        'driver': 'GTiff',
        'width': size,
        'height': size,
        'count': len(BANDS),
        'dtype': 'uint16',
        'crs': scene.crs,
        'transform': from_origin(scene.bounds[0], scene.bounds[3], *scene.res),
        'tiled': True,
        'blockxsize': 512,
        'blockysize': 512,
        'compress': 'deflate',
        'predictor': 2,
        'BIGTIFF': 'YES',
    }
    partial = path.with_name(f'.{path.name}.partial')
    with rasterio.open(partial, 'w', **profile) as tile:
        tile.descriptions = tuple(BANDS)
        for top in tqdm(range(0, size, 512), desc=f'Writing {path.name}', unit='block'):
            rows = np.arange(top, min(top + 512, size)) % (2 * height)
            rows = np.where(rows < height, rows, 2 * height - 1 - rows)
            block = source[:, rows][:, :, columns]
            window = rasterio.windows.Window(0, top, size, len(rows))
            tile.write(block, window=window)
    os.replace(partial, path)
    return path


#: Runs its arguments and prints their peak resident memory (``ru_maxrss``, KiB).
_LAUNCHER = (
    'import os, subprocess, sys\n'
    'child = subprocess.Popen(sys.argv[1:])\n'
    '_, status, usage = os.wait4(child.pid, 0)\n'
    "print(f'peak KiB {usage.ru_maxrss}', flush=True)\n"
    'sys.exit(os.waitstatus_to_exitcode(status))\n'
)


def map_command(
    checkpoint: Path,
    raster: Path,
    output: Path,
    batch_size: int,
    device: str,
    *options: str,
    geossl: Path = REPOSITORY,
) -> dict[str, float]:
    """Run ``geossl map`` in its own process.

    Args:
        checkpoint: the model.
        raster: the scene.
        output: the class map.
        batch_size: windows per forward pass.
        device: where the model runs (``geossl map --device``).
        options: more ``geossl map`` options.
        geossl: the folder of the ``geossl`` package to run (:func:`export_tree`).

    Returns:
        The pixels it mapped (millions) and their rate (Mpx/s), as it reports them,
        its wall time (s) and its peak resident memory (GiB).
    """
    command = [sys.executable, '-m', 'geossl.cli', 'map', str(checkpoint), str(raster)]
    command += ['-o', str(output), '--overwrite', 'true']
    command += ['--batch_size', str(batch_size), '--device', device, *options]
    started = time.perf_counter()
    # Through a small launcher: Linux carries a process's peak memory across exec,
    # so a child started from this (large) process would report this one's peak.
    launcher = [sys.executable, '-c', _LAUNCHER, *command]
    process = subprocess.run(
        launcher, stdout=subprocess.PIPE, text=True, env=with_geossl_from(geossl)
    )
    printed = process.stdout
    if process.returncode:
        raise SystemExit(f'geossl map failed on {raster}:\n{printed}')
    peak = int(re.search(r'^peak KiB (\d+)$', printed, re.MULTILINE).group(1))
    mapped, rate = re.search(r'\(([\d.]+) Mpx, ([\d.]+) Mpx/s\)', printed).groups()
    return {
        'mapped Mpx': float(mapped),
        'map Mpx/s': float(rate),
        'seconds': time.perf_counter() - started,
        'peak RSS GiB': peak * 1024 / 2**30,
    }


def region_file(path: Path, scene: Scene, share: float) -> Path:
    """A hexagon in the middle of a scene covering ``share`` of it, in WGS 84.

    Args:
        path: the GeoPackage to write.
        scene: the scene.
        share: the hexagon's area over the scene's.

    Returns:
        ``path``.
    """
    minx, miny, maxx, maxy = scene.bounds
    area = share * (maxx - minx) * (maxy - miny)
    # A regular hexagon of circumradius r has area 3 sqrt(3) r^2 / 2.
    radius = math.sqrt(2 * area / (3 * math.sqrt(3)))
    centre = ((minx + maxx) / 2, (miny + maxy) / 2)
    corners = [
        (centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a))
        for a in np.arange(6) * math.pi / 3
    ]
    hexagon = gpd.GeoSeries([shapely.Polygon(corners)], crs=scene.crs)
    hexagon.to_crs(4326).to_file(path)
    return path


def forward_bound(
    task: SemiSupervisedTask,
    raster: Path,
    batch_size: int,
    strips: int,
    engine: Literal['pytorch', 'onnxruntime'] = 'pytorch',
) -> float:
    """The rate of the model alone over the raster's windows, in Mpx/s.

    Args:
        task: the model.
        raster: the scene.
        batch_size: windows per forward pass.
        strips: strips of windows to time (read beforehand).
        engine: what runs the model, as ``geossl map --engine`` runs it.

    Returns:
        Pixels over (windows x median seconds per window), in millions per second.
    """
    (scene,) = find_scenes(raster)
    mapper = SceneMapper(task)
    grid = WindowGrid(*scene.shape, mapper.chip_size, mapper.stride)
    dataset = StripDataset(mapper.raster(scene), grid, grid.band(0, 1))
    everywhere = torch.arange(len(grid.columns))
    batches = [
        windows
        for strip in islice(dataset, strips)
        for windows in grid.strip_windows(
            strip['image'].to(task.device), everywhere, batch_size
        )
    ]
    probabilities = window_probabilities(task, engine)

    def forward() -> None:
        with torch.inference_mode():
            for windows in batches:
                probabilities(windows)

    seconds = median_seconds(forward, repeats=3, device=task.device)
    per_window = seconds / sum(len(windows) for windows in batches)
    return grid.height * grid.width / (grid.windows * per_window) / 1e6


#: The models ``--compare`` maps with.
COMPARED_MODELS = ('resnet18', 'tf_efficientnet_lite0')


def compare(options: argparse.Namespace) -> None:
    """``geossl map`` on the 18SVG scene, before and after, with each model.

    Args:
        options: the command line (``before``, ``batch_size``, ``strips``,
            ``device``, ``workdir``, ``output``).
    """
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        before = export_tree(options.before, Path(scratch))
        for model in COMPARED_MODELS:
            checkpoint = demo_checkpoint(options.workdir / f'{model}.ckpt', model)
            task = load_task(checkpoint).to(options.device)
            rates = {
                code: map_command(
                    checkpoint,
                    SCENE,
                    options.workdir / 'map.tif',
                    options.batch_size,
                    str(options.device),
                    geossl=tree,
                )['map Mpx/s']
                for code, tree in (('before', before), ('after', REPOSITORY))
            }
            bounds = (task, SCENE, options.batch_size, options.strips)
            rows.append(
                {
                    'model': model,
                    f'map Mpx/s before ({options.before})': rates['before'],
                    'map Mpx/s after': rates['after'],
                    'after / before': rates['after'] / rates['before'],
                    'model-only Mpx/s, PyTorch': forward_bound(*bounds),
                    'model-only Mpx/s, onnxruntime': forward_bound(
                        *bounds, 'onnxruntime'
                    ),
                }
            )
    settings = vars(options) | {'device': str(options.device)}
    save('mapping_compare', rows, settings, options.output)
    print(
        f'geossl map on the 18SVG scene (1,942 x 1,931 px, 13 bands), chip 32, '
        f'stride 16, batch {options.batch_size}, {options.device}, '
        f'{torch.get_num_threads()} threads'
    )
    print(markdown(rows, {key: '' if key == 'model' else '.2f' for key in rows[0]}))


def main() -> None:
    """Map both rasters, time the model alone, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', type=Path)
    parser.add_argument(
        '--workdir', type=Path, default=Path(tempfile.gettempdir()) / 'geossl-mapping'
    )
    parser.add_argument('--tile_size', type=int, default=TILE)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--strips', type=int, default=8)
    parser.add_argument('--roi_share', type=float, default=0.05)
    parser.add_argument('--device', type=torch.device, default=default_device())
    parser.add_argument('--output', type=Path, default=RESULTS)
    parser.add_argument(
        '--compare',
        action='store_true',
        help='map the 18SVG scene with a ResNet-18 and a Lite0, before (--before) '
        'and after, beside the model alone in PyTorch and in onnxruntime',
    )
    parser.add_argument('--before', default='6df83aa')
    options = parser.parse_args()
    options.workdir.mkdir(parents=True, exist_ok=True)
    if options.compare:
        compare(options)
        return
    checkpoint = options.checkpoint or demo_checkpoint(options.workdir / 'demo.ckpt')
    task = load_task(checkpoint).to(options.device)
    tile = full_tile(
        options.workdir / f'tile-{options.tile_size}.tif', options.tile_size
    )
    (tile_scene,) = find_scenes(tile)
    roi = region_file(options.workdir / 'roi.gpkg', tile_scene, options.roi_share)
    runs = {
        '18SVG scene (13 files, 10/20/60 m)': (SCENE, ()),
        f'full tile {options.tile_size} px (one 13-band file)': (tile, ()),
        f'full tile, ROI {options.roi_share:.0%} of it (a hexagon)': (
            tile,
            ('--roi', str(roi)),
        ),
        f'full tile, ROI {options.roi_share:.0%}, cropped': (
            tile,
            ('--roi', str(roi), '--crop', 'true'),
        ),
    }
    rows = []
    bounds = {}
    for name, (raster, extra) in runs.items():
        (scene,) = find_scenes(raster)
        height, width = scene.shape
        if raster not in bounds:
            bounds[raster] = forward_bound(
                task, raster, options.batch_size, options.strips
            )
        measured = map_command(
            checkpoint,
            raster,
            options.workdir / 'map.tif',
            options.batch_size,
            str(options.device),
            *extra,
        )
        rows.append(
            {
                'raster': name,
                'pixels': f'{height} x {width}',
                'Mpx': height * width / 1e6,
                **measured,
                'model-only Mpx/s': bounds[raster],
                'share of bound': measured['map Mpx/s'] / bounds[raster],
            }
        )
    settings = vars(options) | {
        'checkpoint': str(checkpoint),
        'model': 'resnet18, 13 bands, chip 32, stride 16',
        'device': str(options.device),
    }
    save('mapping', rows, settings, options.output)
    print(
        f'geossl map, ResNet-18, chip 32, stride 16, batch {options.batch_size}, '
        f'{settings["device"]}, {torch.get_num_threads()} threads'
    )
    formats = {
        'raster': '',
        'pixels': '',
        'mapped Mpx': '.1f',
        'seconds': '.0f',
        'map Mpx/s': '.2f',
        'model-only Mpx/s': '.2f',
        'share of bound': '.2f',
        'peak RSS GiB': '.2f',
    }
    print(markdown(rows, formats))


if __name__ == '__main__':
    main()
