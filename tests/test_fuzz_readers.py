"""Every reader of a user's file, fed broken bytes: one line, exit 2, nothing written.

Each case runs a real ``geossl`` command on a copy of a real file (a checkpoint of
``geossl fit``, a EuroSAT-MS GeoTIFF, the 18SVG labels GeoJSON, a fit config, a
locations CSV, a BigEarthNet metadata JSON, a geossl index) replaced by random
bytes, an empty file, a folder, or a truncated or byte-flipped copy. A flipped copy
may still be a valid file, and the command may then succeed; whatever the bytes,
it never ends in a traceback, and when it refuses them it leaves no output.
"""

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from geossl.cli import main
from tests.conftest import sample_fit_args, write_raster

EXAMPLES = Path(__file__).parents[1] / 'examples'

#: A directory in place of the file.
FOLDER = None


def corruptions(original: bytes) -> st.SearchStrategy[bytes | None]:
    """Random bytes, an empty file, a folder, truncated and byte-flipped copies."""

    def flip(changes: list[tuple[int, int]]) -> bytes:
        copy = bytearray(original)
        for position, value in changes:
            copy[position] = value
        return bytes(copy)

    # Headers hold what readers parse first: flips there find most failures.
    position = st.one_of(
        st.integers(0, min(len(original), 512) - 1),
        st.integers(0, len(original) - 1),
    )
    return st.one_of(
        st.just(b''),
        st.just(FOLDER),
        st.binary(min_size=1, max_size=4096),
        st.integers(1, len(original) - 1).map(lambda size: original[:size]),
        st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=8).map(
            flip
        ),
    )


def _put(path: Path, content: bytes | None) -> None:
    if content is FOLDER:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _run(args: list[str]) -> tuple[int, list[str]]:
    """``geossl ARGS`` in this process: the exit status and its error lines."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main(args)
    errors = [
        line for line in stderr.getvalue().splitlines() if 'geossl: error' in line
    ]
    return status, errors


@dataclass
class Reader:
    """A command that reads one user file, and how to lay out its inputs."""

    #: The file's real bytes.
    original: bytes
    #: Where the file goes, relative to the example's folder.
    name: str
    #: The command line, given the example's folder.
    command: Callable[[Path], list[str]]
    #: Other inputs the command needs, laid out in the example's folder.
    prepare: Callable[[Path], None] = lambda folder: None
    #: Whether the command line names the file: an empty file or a folder there is
    #: then an error. A file found in a folder may just be left out of the data.
    named: bool = True


def _check(reader: Reader, content: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        reader.prepare(folder)
        _put(folder / reader.name, content)
        before = _listing(folder)
        status, errors = _run(reader.command(folder))
        event(f'exit {status}')  # pytest --hypothesis-show-statistics counts them
        assert status in (0, 2), errors
        if status == 2:
            assert len(errors) == 1, errors
            assert errors[0].startswith('geossl: error: ')
            # Nothing written, and the broken input left as it was.
            assert _listing(folder) == before
        if reader.named and (content is FOLDER or content == b''):
            assert status == 2


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob('*'))
    }


@pytest.fixture(scope='module')
def checkpoint(shared_data, tmp_path_factory) -> Path:
    """A real checkpoint of ``geossl fit``: one step on the EuroSAT-MS sample."""
    run = tmp_path_factory.mktemp('fit')
    assert main(sample_fit_args(shared_data, run, '--trainer.max_steps', '1')) == 0
    return run / 'checkpoints' / 'last.ckpt'


@pytest.fixture(scope='module')
def tile(shared_data) -> Path:
    """A real 13-band EuroSAT-MS GeoTIFF (64 x 64)."""
    return shared_data / 'eurosat-ms-sample' / 'AnnualCrop' / 'AnnualCrop_1.tif'


FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(data=st.data())
def test_checkpoints_for_map(checkpoint, tile, data):
    reader = Reader(
        checkpoint.read_bytes(),
        'in/model.ckpt',
        lambda f: [
            'map',
            str(f / 'in/model.ckpt'),
            str(tile),
            '-o',
            str(f / 'map.tif'),
        ],
    )
    _check(reader, data.draw(corruptions(reader.original)))


@FUZZ
@given(data=st.data())
def test_rasters_for_index(tile, data):
    reader = Reader(
        tile.read_bytes(),
        'in/tiles/tile.tif',
        lambda f: ['index', str(f / 'in/tiles'), '-o', str(f / 'index.gpkg')],
    )
    _check(reader, data.draw(corruptions(reader.original)))


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_rasters_for_map(checkpoint, tile, data):
    # map reads every pixel through TorchGeo, where index reads only the header.
    reader = Reader(
        tile.read_bytes(),
        'in/tile.tif',
        lambda f: [
            'map',
            str(checkpoint),
            str(f / 'in/tile.tif'),
            '-o',
            str(f / 'm.tif'),
        ],
    )
    _check(reader, data.draw(corruptions(reader.original)))


@FUZZ
@given(data=st.data())
def test_labels_for_index(shared_data, data):
    scene = shared_data / 'sentinel2-scene-18SVG-20160112' / 'T18SVG_20160112_B01.tif'
    reader = Reader(
        (EXAMPLES / '18SVG-labels.geojson').read_bytes(),
        'in/labels.geojson',
        lambda f: [
            *['index', str(scene), '--labels', str(f / 'in/labels.geojson')],
            *['-o', str(f / 'chips.gpkg')],
        ],
    )
    _check(reader, data.draw(corruptions(reader.original)))


FIT_CONFIG = b"""\
data:
  labels_per_class: 2
  batch_size: 2
  mu: 1
  in_memory: true
model:
  backbone: test_resnet
  algorithm: fixmatch
  algorithm_options:
    threshold: 0.9
trainer:
  limit_val_batches: 1
  enable_progress_bar: false
"""


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_configs_for_fit(shared_data, data):
    # What bounds the run or says where it writes stays on the command line, so
    # that a flipped byte can neither start a long run nor write elsewhere.
    reader = Reader(
        FIT_CONFIG,
        'in/config.yaml',
        lambda f: [
            *['fit', '--config', str(f / 'in/config.yaml')],
            *['--data.root', str(shared_data / 'eurosat-ms-sample')],
            *['--data.num_workers', '0', '--trainer.max_steps', '1'],
            *[
                '--trainer.logger',
                'false',
                '--trainer.default_root_dir',
                str(f / 'run'),
            ],
        ],
    )
    _check(reader, data.draw(corruptions(reader.original)))


SIDECAR = b"""\
path,lon,lat,datetime
tiles/a.tif,-75.62,37.67,2016-01-12
tiles/b.tif,13.72,52.51,2018-02-04T09:41:56Z
"""


def _tiles_without_crs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ('a.tif', 'b.tif'):
        data = rng.integers(1, 10000, (3, 8, 8)).astype(np.uint16)
        write_raster(folder / 'in' / 'tiles' / name, data, crs=None)


def _sidecar_index(folder: Path, index: str) -> list[str]:
    return [
        *[
            'index',
            str(folder / 'in/tiles'),
            '--locations',
            str(folder / 'in/sidecar.csv'),
        ],
        *['-o', str(folder / index)],
    ]


@FUZZ
@given(data=st.data())
def test_sidecars_for_index(data):
    reader = Reader(
        SIDECAR,
        'in/sidecar.csv',
        lambda f: _sidecar_index(f, 'index.gpkg'),
        _tiles_without_crs,
    )
    _check(reader, data.draw(corruptions(reader.original)))


@pytest.fixture(scope='module')
def index_file(tmp_path_factory) -> bytes:
    """A real index of the sidecar tiles, as ``geossl index`` writes it."""
    folder = tmp_path_factory.mktemp('index')
    _tiles_without_crs(folder)
    (folder / 'in/sidecar.csv').write_bytes(SIDECAR)
    assert _run(_sidecar_index(folder, 'index.gpkg'))[0] == 0
    return (folder / 'index.gpkg').read_bytes()


@FUZZ
@given(data=st.data())
def test_an_index_being_updated(index_file, data):
    # Re-running index on its output reads the old index first.
    def prepare(folder: Path) -> None:
        _tiles_without_crs(folder)
        (folder / 'in/sidecar.csv').write_bytes(SIDECAR)

    reader = Reader(
        index_file,
        'in/index.gpkg',
        lambda f: _sidecar_index(f, 'in/index.gpkg'),
        prepare,
    )
    _check(reader, data.draw(corruptions(reader.original)))


@FUZZ
@given(data=st.data())
def test_bigearthnet_json_for_index(shared_data, data):
    patch = shared_data / 'bigearthnet-s2-examples' / 'S2A_MSIL2A_20170613T101031_87_48'
    json_name = f'{patch.name}_labels_metadata.json'

    def prepare(folder: Path) -> None:
        copy = folder / 'in' / 'patches' / patch.name
        copy.mkdir(parents=True)
        for band in patch.glob('*.tif'):
            os.symlink(band, copy / band.name)

    reader = Reader(
        (patch / json_name).read_bytes(),
        f'in/patches/{patch.name}/{json_name}',
        lambda f: ['index', str(f / 'in/patches'), '-o', str(f / 'index.gpkg')],
        prepare,
        named=False,
    )
    _check(reader, data.draw(corruptions(reader.original)))


def test_the_corruptions_reach_every_kind(tile):
    """The strategy draws each kind of broken file (so no kind goes untested)."""
    original = tile.read_bytes()
    seen = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(content=corruptions(original))
    def draw(content):
        if content is FOLDER:
            seen.add('folder')
        elif content == b'':
            seen.add('empty')
        elif len(content) < len(original) and original.startswith(content):
            seen.add('truncated')
        elif len(content) == len(original):
            seen.add('flipped')
        else:
            seen.add('random')

    draw()
    assert seen == {'folder', 'empty', 'truncated', 'flipped', 'random'}
