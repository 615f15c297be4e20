"""Shared fixtures: the real sample data beside the repository, and small rasters."""

import os

# Each pytest-xdist worker takes its share of the cores, as do the processes it
# starts; set before torch starts its threads, so workers do not fight for cores.
if workers := os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
    share = max(1, (os.cpu_count() or 1) // int(workers))
    os.environ.setdefault('OMP_NUM_THREADS', str(share))
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from hypothesis import settings
from rasterio.transform import from_origin
from rasterio.windows import from_bounds
from torch import Tensor

from geossl.data.columns import BOUNDS_COLUMNS
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.folder import ImageFolderDataset

# CI draws the same examples on every run, so that a run passes or fails by the
# code alone; elsewhere each run draws new ones.
settings.register_profile('ci', derandomize=True, database=None)
if os.environ.get('CI'):
    settings.load_profile('ci')

SHARED_DATA = Path(
    os.environ.get(
        'GEOSSL_SHARED_DATA', Path(__file__).parents[1] / '..' / 'shared' / 'data'
    )
).resolve()


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The real sample data; its absence is an error, not a reason to skip."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f'real sample data not found at {SHARED_DATA}; set GEOSSL_SHARED_DATA'
        )
    return SHARED_DATA


@pytest.fixture(scope='session', autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep cached indexes out of the user's home, for every scope of fixture."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('GEOSSL_CACHE_DIR', str(tmp_path_factory.mktemp('cache')))
        yield


@pytest.fixture(scope='session')
def eurosat_ms(shared_data: Path) -> ImageFolderDataset:
    """The real EuroSAT-MS sample: 100 georeferenced 13-band tiles, 10 classes."""
    return ImageFolderDataset(shared_data / 'eurosat-ms-sample', progress=False)


class _PlacesOnly(GeoClassificationDataset):
    """Samples known by their index alone: what splits read, without pixels."""

    def read_image(self, position: int) -> Tensor:
        raise NotImplementedError('these samples are places and classes only')


@pytest.fixture(scope='session')
def eurosat_places(shared_data: Path) -> GeoClassificationDataset:
    """The 27,000 EuroSAT tiles as places and classes (the published table)."""
    table = pd.read_parquet(
        shared_data / 'eurosat-locations' / 'eurosat_metadata.parquet'
    )
    index = pd.DataFrame(
        {
            'sample_id': table['image_id'],
            'label': table['label_name'],
            'lon': table['lon'],
            'lat': table['lat'],
            'datetime': pd.Series(
                pd.NaT, index=table.index, dtype='datetime64[ns, UTC]'
            ),
            'crs': None,
            **dict.fromkeys(BOUNDS_COLUMNS, np.nan),
        }
    )
    return _PlacesOnly(
        index, sorted(table['label_name'].unique()), False, ['R', 'G', 'B']
    )


@pytest.fixture(scope='session')
def bigearthnet(shared_data: Path) -> ImageFolderDataset:
    """The 6 real BigEarthNet-S2 v1 example patches (multi-label, 19 classes)."""
    return ImageFolderDataset(shared_data / 'bigearthnet-s2-examples', progress=False)


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str | None = 'EPSG:32618',
    origin: tuple[float, float] = (440000.0, 4170000.0),
    res: float = 10.0,
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
    descriptions: Sequence[str] | None = None,
) -> Path:
    """Write a small GeoTIFF (C x H x W) for edge cases."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = data.shape
    profile = {
        'driver': 'GTiff',
        'count': count,
        'height': height,
        'width': width,
        'dtype': data.dtype,
        'nodata': nodata,
    }
    if crs is not None:
        profile |= {'crs': crs, 'transform': from_origin(*origin, res, res)}
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
        if descriptions:
            for i, name in enumerate(descriptions, start=1):
                dst.set_band_description(i, name)
    return path


def random_chip(bands: int = 4, size: int = 16, seed: int = 0) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .integers(1, 10000, (bands, size, size))
        .astype(np.uint16)
    )


def sample_fit_args(shared_data: Path, run_dir: Path, *options: str) -> list[str]:
    """``geossl fit`` arguments for a few quick steps on the real EuroSAT-MS sample.

    Two labels per class, tiles in memory, timm's tiny ``test_resnet``, one
    validation batch, no progress bar or logger; ``options`` come last and win.
    """
    return [
        'fit',
        '--config',
        str(Path(__file__).parents[1] / 'configs' / 'eurosat-ms.yaml'),
        '--data.root',
        str(shared_data / 'eurosat-ms-sample'),
        '--data.labels_per_class',
        '2',
        '--data.num_workers',
        '0',
        '--data.in_memory',
        'true',
        '--model.model',
        'test_resnet',
        '--trainer.limit_val_batches',
        '1',
        '--trainer.enable_progress_bar',
        'false',
        '--trainer.logger',
        'false',
        '--trainer.default_root_dir',
        str(run_dir),
        *options,
    ]


def fit_one_step(shared_data: Path, run_dir: Path, *options: str) -> Path:
    """Run ``geossl fit`` for one small step (:func:`sample_fit_args`), 32 px chips.

    Returns:
        The run's ``last.ckpt``.
    """
    from geossl.cli import main

    args = sample_fit_args(
        shared_data,
        run_dir,
        *['--data.chip_size', '32', '--trainer.max_steps', '1'],
        *['--data.batch_size', '2', '--data.mu', '1'],
        *options,
    )
    assert main(args) == 0
    return run_dir / 'checkpoints' / 'last.ckpt'


@pytest.fixture(scope='session')
def scene_crop(shared_data, tmp_path_factory):
    """The real 18SVG band files cut to 2.58 x 2.58 km around the bay shore."""
    folder = tmp_path_factory.mktemp('crop')
    # Aligned to the 10, 20 and 60 m grids, so every band covers it exactly.
    bounds = (441000.0, 4163460.0, 443580.0, 4166040.0)
    for source in sorted((shared_data / 'sentinel2-scene-18SVG-20160112').iterdir()):
        with rasterio.open(source) as src:
            window = from_bounds(*bounds, src.transform).round_offsets().round_lengths()
            profile = src.profile | {
                'width': window.width,
                'height': window.height,
                'transform': src.window_transform(window),
            }
            with rasterio.open(folder / source.name, 'w', **profile) as dst:
                dst.write(src.read(window=window))
    return folder
