"""``geossl map`` of a STAC item over HTTP: bytes fetched for a region of interest.

A full Sentinel-2 tile (10,980 px, made from the real 18SVG bands as in
``mapping.py``) is written as 13 Cloud-Optimized GeoTIFFs at the bands' native 10,
20 and 60 m (DEFLATE, 512 px blocks), described by a STAC item named the Planetary
Computer way, and served on 127.0.0.1 by the test suite's range-request server
(``tests/stac.py``), which counts the bytes it sends. ``geossl map`` then maps a
hexagon of ``--roi_share`` (5 %) of the tile, in a process of its own, once from the
item over HTTP and once from the same files on disk; the two maps must be equal.
``--whole`` also maps the whole tile over HTTP (about 7 minutes on 2 cores).

Prints a Markdown table and writes ``results/stac.csv`` and ``results/stac.json``.

    .venv/bin/python benchmarks/stac.py [--workdir DIR] [--whole]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from mapping import BANDS, demo_checkpoint, full_tile, map_command, region_file
from rasterio.enums import Resampling
from report import RESULTS, default_device, markdown, save
from tqdm import tqdm

from geossl.data.scene_files import find_scenes

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.stac import http_server, s2_item

#: Each band's native resolution in metres.
RESOLUTION = {band: 10 for band in ('B02', 'B03', 'B04', 'B08')}
RESOLUTION |= {band: 60 for band in ('B01', 'B09', 'B10')}
RESOLUTION |= {band: 20 for band in BANDS if band not in RESOLUTION}


def band_cogs(tile: Path, folder: Path) -> dict[str, Path]:
    """The tile's bands as COGs at their native resolutions (kept if there).

    Args:
        tile: the 13-band 10 m tile.
        folder: where to write ``T18SVG_20160112_<band>.tif``.

    Returns:
        Each band's file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {band: folder / f'T18SVG_20160112_{band}.tif' for band in BANDS}
    with rasterio.open(tile) as src:
        for position, band in enumerate(tqdm(BANDS, desc='Writing COGs'), start=1):
            if files[band].exists():
                continue
            factor = RESOLUTION[band] // 10
            shape = (src.height // factor, src.width // factor)
            data = src.read(position, out_shape=shape, resampling=Resampling.average)
            profile = {
                'driver': 'COG',
                'width': shape[1],
                'height': shape[0],
                'count': 1,
                'dtype': 'uint16',
                'crs': src.crs,
                'transform': src.transform @ src.transform.scale(factor, factor),
                'compress': 'deflate',
                'predictor': 2,
                'nodata': 0,
            }
            partial = files[band].with_name(f'.{files[band].name}')
            with rasterio.open(partial, 'w', **profile) as dst:
                dst.write(data[None])
            partial.rename(files[band])
    return files


def main() -> None:
    """Serve the tile's COGs, map a region from them over HTTP and from disk."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--workdir', type=Path, default=Path(tempfile.gettempdir()) / 'geossl-mapping'
    )
    parser.add_argument('--roi_share', type=float, default=0.05)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--whole', action='store_true')
    parser.add_argument('--output', type=Path, default=RESULTS)
    options = parser.parse_args()
    workdir = options.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    device = str(default_device())
    checkpoint = demo_checkpoint(workdir / 'demo.ckpt')
    tile = full_tile(workdir / 'tile-10980.tif', 10_980)
    files = band_cogs(tile, workdir / 'cogs')
    local = workdir / 'cogs'
    (scene,) = find_scenes(local)
    roi = region_file(workdir / 'roi.gpkg', scene, options.roi_share)
    total = sum(path.stat().st_size for path in files.values())
    rows = []
    maps = {}
    with http_server(workdir, []) as (url, state):
        hrefs = {band: f'{url}/cogs/{path.name}' for band, path in files.items()}
        items = workdir / 'item.json'
        item = s2_item('T18SVG_20160112', hrefs, 'pc', like=files['B02'])
        items.write_text(json.dumps(item.to_dict()))
        runs = [('STAC item over HTTP', items, ('--roi', str(roi)))]
        runs.append(('the same files on disk', local, ('--roi', str(roi))))
        if options.whole:
            runs.append(('STAC item over HTTP, whole tile', items, ()))
        for name, source, extra in runs:
            region = 'whole tile' if not extra else f'{options.roi_share:.0%} hexagon'
            output = workdir / f'stac-{len(rows)}.tif'
            state.sent.clear()
            state.requests = 0
            measured = map_command(
                checkpoint, source, output, options.batch_size, device, *extra
            )
            with rasterio.open(output) as src:
                maps[name] = src.read()
            fetched = state.bytes_sent() if source == items else None
            rows.append(
                {
                    'source': name,
                    'region': region,
                    'MB fetched': None if fetched is None else fetched / 1e6,
                    'share of the files': None if fetched is None else fetched / total,
                    'requests': None if fetched is None else state.requests,
                    'seconds': measured['seconds'],
                    'peak RSS GiB': measured['peak RSS GiB'],
                }
            )
    same = np.array_equal(maps['STAC item over HTTP'], maps['the same files on disk'])
    for row in rows:
        row['map equals the local one'] = same if 'hexagon' in row['region'] else ''
    formats = {
        'source': '',
        'region': '',
        'MB fetched': '.1f',
        'share of the files': '.1%',
        'requests': '',
        'seconds': '.0f',
        'peak RSS GiB': '.2f',
        'map equals the local one': '',
    }
    print(f'COGs served: {total / 1e6:.0f} MB (13 bands, 10,980 px at 10 m)')
    print(markdown(rows, formats))
    settings = {'files MB': total / 1e6, 'device': device, **vars(options)}
    save('stac', rows, settings, options.output)


if __name__ == '__main__':
    main()
