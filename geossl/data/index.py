"""A GeoPackage index of a data source: one row per sample, with where and when.

The index is what every dataset reads instead of re-opening thousands of rasters,
and it opens in QGIS as a layer of footprints. Re-indexing a source reuses the rows
of files whose size and modification time have not changed, so a folder is scanned
once.

Layouts recognised under a root folder:

* ``classes``: ``root/<class>/**/*.tif`` (or JPEG/PNG), one class per sub-folder; a
  sub-folder named ``unlabeled``/``unlabelled`` holds unlabelled samples.
* ``bigearthnet``: ``root/<patch>/<patch>_<band>.tif`` plus
  ``<patch>_labels_metadata.json`` (BigEarthNet v1), one multi-label sample per patch.
* ``rasters``: image files directly under ``root`` (a scene, or a pile of tiles), or a
  single raster file; unlabelled.
"""

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd
import pyogrio
from tqdm.auto import tqdm

from geossl.data.metadata import (
    IMAGE_SUFFIXES,
    MetadataReader,
    bigearthnet_metadata_file,
    read_bigearthnet_json,
)
from geossl.data.raster import describe
from geossl.errors import DatasetLayoutError, GeosslInputError

Layout = Literal['classes', 'bigearthnet', 'rasters']

#: Sub-folder names that hold unlabelled samples in the ``classes`` layout.
UNLABELLED_FOLDERS = frozenset({'unlabeled', 'unlabelled'})

#: Separator of the labels of a multi-label sample in the ``label`` column.
LABEL_SEPARATOR = '; '

_LAYER = 'samples'
_SIGNATURE_COLUMNS = ('size_bytes', 'mtime_ns')


@dataclasses.dataclass(frozen=True)
class SampleRef:
    """One sample of a source before it is indexed.

    Attributes:
        sample_id: stable identifier: the path relative to the source root.
        path: a raster file or a sample folder.
        label: class name, several names for a multi-label sample, or None.
    """

    sample_id: str
    path: Path
    label: str | tuple[str, ...] | None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def detect_layout(root: Path) -> Layout:
    """Recognise the layout of a data source.

    Args:
        root: a folder or a single raster file.

    Returns:
        The layout name.

    Raises:
        DatasetLayoutError: if the root does not exist or holds no images.
    """
    if _is_image(root):
        return 'rasters'
    if not root.is_dir():
        raise DatasetLayoutError(root, 'is neither a folder nor an image file')
    children = sorted(root.iterdir())
    if any(_is_image(child) for child in children):
        return 'rasters'
    folders = [child for child in children if child.is_dir()]
    if any(bigearthnet_metadata_file(folder) for folder in folders):
        return 'bigearthnet'
    if folders:
        return 'classes'
    raise DatasetLayoutError(
        root, f'holds no images ({", ".join(IMAGE_SUFFIXES)}) and no class folders'
    )


def list_samples(root: Path, layout: Layout | None = None) -> list[SampleRef]:
    """List the samples of a data source without opening any raster.

    Args:
        root: a folder or a single raster file.
        layout: the layout, or None to detect it.

    Returns:
        The samples, in a stable (sorted) order.

    Raises:
        DatasetLayoutError: if the layout is not recognised or a class folder is empty.
    """
    layout = layout or detect_layout(root)
    if root.is_file():
        return [SampleRef(root.name, root, None)]
    if layout == 'rasters':
        images = sorted(p for p in root.iterdir() if _is_image(p))
        return [SampleRef(p.name, p, None) for p in images]
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if layout == 'bigearthnet':
            metadata = bigearthnet_metadata_file(folder)
            if metadata is None:
                continue
            labels = read_bigearthnet_json(metadata).get('labels', [])
            samples.append(SampleRef(folder.name, folder, tuple(labels)))
            continue
        images = sorted(p for p in folder.rglob('*') if _is_image(p))
        unlabelled = folder.name.lower() in UNLABELLED_FOLDERS
        if not images and not unlabelled:
            raise DatasetLayoutError(folder, 'class folder holds no images')
        label = None if unlabelled else folder.name
        samples += [SampleRef(p.relative_to(root).as_posix(), p, label) for p in images]
    if not samples:
        raise DatasetLayoutError(root, f'holds no {layout} samples')
    return samples


def _file_signature(path: Path) -> tuple[int, int]:
    """Total size and newest modification time of a file or a sample folder."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def _label_text(label: str | tuple[str, ...] | None) -> str | None:
    if isinstance(label, tuple):
        return LABEL_SEPARATOR.join(label)
    return label


def _sample_row(sample: SampleRef, reader: MetadataReader) -> dict[str, object]:
    meta = reader.read(sample.path)
    shape = describe(sample.path)
    size_bytes, mtime_ns = _file_signature(sample.path)
    return {
        'sample_id': sample.sample_id,
        'path': str(sample.path.resolve()),
        'label': _label_text(sample.label),
        'lon': meta.lon,
        'lat': meta.lat,
        'datetime': pd.Timestamp(meta.time) if meta.time is not None else pd.NaT,
        'crs': meta.crs,
        'width': shape.width,
        'height': shape.height,
        'bands': shape.bands,
        'band_names': ','.join(shape.band_names) if shape.band_names else None,
        'dtype': shape.dtype,
        'size_bytes': size_bytes,
        'mtime_ns': mtime_ns,
        'geometry': meta.footprint,
    }


def _reader_settings(reader: MetadataReader) -> str:
    settings = dataclasses.asdict(reader)
    if settings['sidecar'] is not None:
        settings['sidecar'] = str(Path(settings['sidecar']).resolve())
    return json.dumps(settings, sort_keys=True)


def build_index(
    root: str | Path,
    reader: MetadataReader | None = None,
    previous: gpd.GeoDataFrame | None = None,
    progress: bool = True,
) -> gpd.GeoDataFrame:
    """Index a data source.

    Args:
        root: a folder in one of the recognised layouts, or a single raster file.
        reader: how to read location and time; defaults to :class:`MetadataReader`.
        previous: an earlier index of the same source whose rows are reused for
            files that have not changed.
        progress: show a progress bar.

    Returns:
        One row per sample: ``sample_id, path, label, lon, lat, datetime, crs, width,
        height, bands, band_names, dtype, size_bytes, mtime_ns`` and the footprint
        geometry in EPSG:4326. The source root, layout and reader settings are kept in
        ``.attrs``.

    Raises:
        GeosslInputError: for any unreadable sample, naming it.
    """
    root = Path(root)
    reader = reader or MetadataReader()
    layout = detect_layout(root)
    samples = list_samples(root, layout)
    reusable: dict[str, dict[str, object]] = {}
    if previous is not None:
        reusable = {row['path']: row for row in previous.to_dict('records')}
    rows = []
    for sample in tqdm(
        samples, desc=f'Indexing {root.name}', unit='sample', disable=not progress
    ):
        old = reusable.get(str(sample.path.resolve()))
        if old is not None and (
            old['size_bytes'],
            old['mtime_ns'],
        ) == _file_signature(sample.path):
            rows.append(old | {'label': _label_text(sample.label)})
        else:
            rows.append(_sample_row(sample, reader))
    index = gpd.GeoDataFrame(pd.DataFrame(rows), geometry='geometry', crs='EPSG:4326')
    index['datetime'] = pd.to_datetime(index['datetime'], utc=True)
    index.attrs.update(
        root=str(root.resolve()), layout=layout, reader=_reader_settings(reader)
    )
    return index


def write_index(index: gpd.GeoDataFrame, path: str | Path) -> None:
    """Write an index to a GeoPackage atomically (temporary file, then rename).

    Args:
        index: an index from :func:`build_index`.
        path: the ``.gpkg`` file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f'.{path.name}.partial-{os.getpid()}.gpkg')
    try:
        index.to_file(partial, layer=_LAYER, driver='GPKG', metadata=dict(index.attrs))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_index(path: str | Path) -> gpd.GeoDataFrame:
    """Read an index written by :func:`write_index`.

    Args:
        path: the ``.gpkg`` file.

    Returns:
        The index, with its source root, layout and reader settings in ``.attrs``.

    Raises:
        GeosslInputError: if the file is not a geossl index.
    """
    path = Path(path)
    try:
        info = pyogrio.read_info(path, layer=_LAYER)
        index = gpd.read_file(path, layer=_LAYER)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise GeosslInputError(path, f'is not a geossl index ({error})') from None
    metadata = info.get('layer_metadata') or {}
    if not {'root', 'layout', 'reader'} <= set(metadata):
        raise GeosslInputError(path, 'is a GeoPackage but not a geossl index')
    index.attrs.update(metadata)
    return index


def default_index_path(root: str | Path, reader: MetadataReader) -> Path:
    """Where the cached index of a source lives when the user names none.

    The cache folder is ``$GEOSSL_CACHE_DIR`` or ``~/.cache/geossl``; the file name
    hashes the source root and the reader settings.

    Args:
        root: the data source.
        reader: the metadata reader the index is built with.

    Returns:
        A ``.gpkg`` path in the cache folder.
    """
    cache = Path(os.environ.get('GEOSSL_CACHE_DIR', Path.home() / '.cache' / 'geossl'))
    key = f'{Path(root).resolve()}\n{_reader_settings(reader)}'
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache / 'index' / f'{Path(root).name}-{digest}.gpkg'


def index_source(
    root: str | Path,
    output: str | Path | None = None,
    reader: MetadataReader | None = None,
    progress: bool = True,
) -> gpd.GeoDataFrame:
    """Index a source, reusing and updating an existing index file.

    Args:
        root: the data source.
        output: the index file to read and (re)write; None for the cache
            (:func:`default_index_path`).
        reader: how to read location and time.
        progress: show a progress bar.

    Returns:
        The up-to-date index.

    Raises:
        GeosslInputError: if ``output`` exists but indexes another source, or a
            sample is unreadable.
    """
    reader = reader or MetadataReader()
    output = Path(output) if output is not None else default_index_path(root, reader)
    previous = None
    if output.exists():
        previous = read_index(output)
        if previous.attrs['root'] != str(Path(root).resolve()):
            raise GeosslInputError(
                output,
                f'already indexes {previous.attrs["root"]}; choose another output',
            )
        if previous.attrs['reader'] != _reader_settings(reader):
            previous = None
    index = build_index(root, reader, previous, progress)
    write_index(index, output)
    return index


def class_names(labels: Iterable[str | None]) -> list[str]:
    """Sorted class names of an index's ``label`` column.

    Args:
        labels: label texts, multi-label ones joined by :data:`LABEL_SEPARATOR`.

    Returns:
        The distinct class names, sorted.
    """
    names: set[str] = set()
    for label in labels:
        if isinstance(label, str) and label:
            names.update(label.split(LABEL_SEPARATOR))
    return sorted(names)
