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
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd
import pyogrio

from geossl.atomic import atomic_output, check_output
from geossl.cache import cache_dir
from geossl.data.bands import numbered_bands
from geossl.data.columns import BOUNDS_COLUMNS, LABEL_SEPARATOR
from geossl.data.metadata import (
    IMAGE_SUFFIXES,
    SENTINEL2_FILENAME_REGEX,
    MetadataReader,
    bigearthnet_metadata_file,
    read_bigearthnet_json,
    reader_settings,
)
from geossl.data.raster import band_files, describe
from geossl.data.reflectance import declared_offset
from geossl.data.scene import SceneDataset
from geossl.data.stac import is_stac
from geossl.errors import DatasetLayoutError, GeosslInputError, reading
from geossl.progress import Tqdm

Layout = Literal['classes', 'bigearthnet', 'rasters']

#: Layout recorded for indexes of explicit sample lists (TorchGeo datasets).
LIST_LAYOUT = 'list'

#: Sub-folder names that hold unlabelled samples in the ``classes`` layout.
UNLABELLED_FOLDERS = frozenset({'unlabeled', 'unlabelled'})

_LAYER = 'samples'


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
    meta = reader.read(sample.path, sample.sample_id)
    shape = describe(sample.path)
    names = shape.band_names or tuple(numbered_bands(shape.bands))
    files = band_files(sample.path) if sample.path.is_dir() else [sample.path]
    offset = declared_offset(files, names)
    size_bytes, mtime_ns = _file_signature(sample.path)
    return {
        'sample_id': sample.sample_id,
        'path': str(sample.path.resolve()),
        'label': _label_text(sample.label),
        'lon': meta.lon,
        'lat': meta.lat,
        'datetime': pd.Timestamp(meta.time) if meta.time is not None else pd.NaT,
        'crs': meta.crs,
        **dict(zip(BOUNDS_COLUMNS, meta.bounds or (None,) * 4, strict=True)),
        'width': shape.width,
        'height': shape.height,
        'bands': shape.bands,
        'band_names': ','.join(shape.band_names) if shape.band_names else None,
        'dtype': shape.dtype,
        'reflectance_offset': math.nan if offset is None else offset,
        'size_bytes': size_bytes,
        'mtime_ns': mtime_ns,
        'geometry': meta.footprint,
    }


def build_index(
    samples: Sequence[SampleRef],
    reader: MetadataReader | None = None,
    previous: gpd.GeoDataFrame | None = None,
    progress: bool = True,
    description: str = 'Indexing',
) -> gpd.GeoDataFrame:
    """Index samples: read each one's shape, footprint, location and time.

    Args:
        samples: the samples, e.g. from :func:`list_samples`.
        reader: how to read location and time; defaults to :class:`~.MetadataReader`.
        previous: an earlier index whose rows are reused for files that have not
            changed since (same size and modification time).
        progress: show a progress bar.
        description: label of the progress bar.

    Returns:
        One row per sample: ``sample_id, path, label, lon, lat, datetime, crs,
        minx, miny, maxx, maxy, width, height, bands, band_names, dtype,
        reflectance_offset, size_bytes, mtime_ns`` and the footprint geometry in
        EPSG:4326 (None where not georeferenced); ``reflectance_offset`` is the
        offset the data declares (NaN where none, see
        :mod:`geossl.data.reflectance`).

    Raises:
        GeosslInputError: for any unreadable sample, naming it.
    """
    reader = reader or MetadataReader()
    reusable = {}
    if previous is not None:
        reusable = {row['path']: row for row in previous.to_dict('records')}
    rows = []
    for sample in Tqdm(samples, desc=description, unit='sample', disable=not progress):
        old = reusable.get(str(sample.path.resolve()))
        signature = _file_signature(sample.path)
        # Rows of indexes older than a column are read again.
        current = old is not None and 'reflectance_offset' in old
        if current and (old['size_bytes'], old['mtime_ns']) == signature:
            rows.append(old | {'label': _label_text(sample.label)})
        else:
            rows.append(_sample_row(sample, reader))
    index = gpd.GeoDataFrame(pd.DataFrame(rows), geometry='geometry', crs='EPSG:4326')
    index['datetime'] = pd.to_datetime(index['datetime'], utc=True)
    return index


def write_index(index: gpd.GeoDataFrame, path: str | Path) -> None:
    """Write an index to a GeoPackage atomically (temporary file, then rename).

    Args:
        index: an index from :func:`build_index`.
        path: the ``.gpkg`` file to write.
    """
    path = Path(path)
    check_output(path, overwrite=True)
    with atomic_output(path) as partial:
        index.to_file(partial, layer=_LAYER, driver='GPKG', metadata=dict(index.attrs))


def read_index(path: str | Path) -> gpd.GeoDataFrame:
    """Read an index written by :func:`write_index`.

    Args:
        path: the ``.gpkg`` file.

    Returns:
        The index, with its source, layout and reader settings in ``.attrs``.

    Raises:
        GeosslInputError: if the file is not a geossl index.
    """
    path = Path(path)
    with reading(path, 'a geossl index'):
        info = pyogrio.read_info(path, layer=_LAYER)
        index = gpd.read_file(path, layer=_LAYER)
    metadata = info.get('layer_metadata') or {}
    if not {'source', 'layout', 'reader'} <= set(metadata):
        raise GeosslInputError(path, 'is a GeoPackage but not a geossl index')
    index.attrs.update(metadata)
    return index


def default_index_path(source: str, reader: MetadataReader) -> Path:
    """Where the cached index of a source lives when the user names none.

    The cache folder is ``$GEOSSL_CACHE_DIR`` or ``~/.cache/geossl``; the file name
    hashes the source and the reader settings.

    Args:
        source: what the index describes (a resolved root folder, for instance).
        reader: the metadata reader the index is built with.

    Returns:
        A ``.gpkg`` path in the cache folder.
    """
    key = f'{source}\n{reader_settings(reader)}'
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir('index') / f'{digest}.gpkg'


def index_source(
    root: str | Path,
    output: str | Path | None = None,
    reader: MetadataReader | None = None,
    progress: bool = True,
    samples: Sequence[SampleRef] | None = None,
    source: str | None = None,
) -> gpd.GeoDataFrame:
    """Index a data source, reusing and updating an existing index file.

    Args:
        root: the data source folder (or raster file).
        output: the index file to read and (re)write; None for the cache
            (:func:`default_index_path`).
        reader: how to read location and time.
        progress: show a progress bar.
        samples: the samples to index; None lists them from ``root`` by its layout.
        source: what the index describes (kept in the file to refuse mixing
            sources); defaults to the resolved ``root``.

    Returns:
        The up-to-date index, with ``source``, ``layout`` and ``reader`` settings in
        ``.attrs``.

    Raises:
        GeosslInputError: if ``output`` exists but indexes another source, or a
            sample is unreadable.
    """
    root = Path(root)
    reader = reader or MetadataReader()
    source = source or str(root.resolve())
    layout = LIST_LAYOUT if samples is not None else detect_layout(root)
    if samples is None:
        samples = list_samples(root, layout)
    if reader.location_table is not None:
        reader.location_table.check_names(
            [(sample.path, sample.sample_id) for sample in samples], root
        )
    output = Path(output) if output is not None else default_index_path(source, reader)
    previous = None
    if output.exists():
        previous = read_index(output)
        if previous.attrs['source'] != source:
            raise GeosslInputError(
                output,
                f'already indexes {previous.attrs["source"]}; choose another output',
            )
        if previous.attrs['reader'] != reader_settings(reader):
            previous = None
    index = build_index(samples, reader, previous, progress, f'Indexing {root.name}')
    index.attrs.update(source=source, layout=layout, reader=reader_settings(reader))
    write_index(index, output)
    return index


def index(
    source: str,
    output: str,
    labels: str | None = None,
    class_column: str = 'class',
    chip_size: int = 64,
    stride: int | None = None,
    filename_regex: str = SENTINEL2_FILENAME_REGEX.strip(),
    date_format: str | None = None,
    locations: str | None = None,
    location_optional: bool = False,
    sidecar: str | None = None,
) -> gpd.GeoDataFrame:
    """Index a data source into a GeoPackage of footprints (EPSG:4326).

    One row per sample with path, class, lon, lat and acquisition datetime.
    Re-running on the same output reuses the rows of unchanged files.

    Args:
        source: A folder of class sub-folders, a folder of BigEarthNet patches, a
            folder of rasters (e.g. one scene, one file per band), a raster file, or
            STAC items (an Item, ItemCollection or static catalog, as a JSON file or
            URL), whose scenes are indexed as chips.
        output: The .gpkg file to write.
        labels: Vector file (GeoPackage, GeoJSON, Shapefile) of labelled points or
            polygons over the scene(s) in SOURCE. The index then lists chips:
            labelled chips around the labels and unlabelled chips on a grid across
            the rest of each scene.
        class_column: Column of the labels file holding the class.
        chip_size: Chip width and height in pixels of the finest band (with
            --labels).
        stride: Step of the unlabelled chip grid in pixels (with --labels); default:
            the chip size.
        filename_regex: Regular expression with a (?P<date>...) group, matched
            against each file or sample-folder name to read its acquisition date
            (the TorchGeo convention). Default: the Sentinel-2 naming convention.
            Give an empty string to skip file names.
        date_format: strptime format of the date group, e.g. %Y%m%d. Default: ISO
            8601 (20160112, 20160112T160652, 2016-01-12T16:06:52Z).
        locations: CSV or Parquet table that fills in the locations and dates the
            data itself lacks: a path or file-name column (path, file, filename,
            file_name, image_id or image), lon, lat (WGS 84) and optionally
            datetime. A sample matches by its path relative to the source or to the
            table, else by a unique file name with or without its extension.
        location_optional: Mark the location of rasters with no CRS as missing
            instead of failing (for JPEG/PNG folders without a locations table).
        sidecar: Deprecated name of --locations.

    Returns:
        The index written.
    """
    if sidecar is not None:
        warnings.warn(
            '--sidecar is deprecated and will be removed; use --locations',
            FutureWarning,
            stacklevel=2,
        )
        locations = locations or sidecar
    # An index is updated in place, so an existing one is no error.
    check_output(Path(output), overwrite=True)
    reader = MetadataReader(
        filename_regex=filename_regex or None,
        date_format=date_format,
        locations=locations,
        require_location=not location_optional,
    )
    if labels is None and not is_stac(source):
        written = index_source(source, output, reader)
    else:
        written = SceneDataset(
            source,
            labels,
            class_column=class_column,
            chip_size=chip_size,
            stride=stride,
            reader=reader,
        ).index
        write_index(written, output)
    located = int(written['lon'].notna().sum())
    dated = int(written['datetime'].notna().sum())
    labelled = int(written['label'].notna().sum())
    print(
        f'Indexed {len(written)} samples ({written.attrs["layout"]} layout; '
        f'{labelled} labelled, {located} with location, {dated} with date) '
        f'-> {Path(output)}'
    )
    return written
