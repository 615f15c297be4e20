"""Where and when each tile was taken, read from the data itself.

Location is the centre of a raster's footprint in WGS84 degrees, computed with pyproj
from the raster's CRS and transform, or else a locations table's. Time is the
acquisition time in UTC, taken from the first of these that has it:

1. the file (or sample folder) name, through a regular expression with a ``date``
   group (the TorchGeo convention; by default the Sentinel-2 naming convention);
2. GeoTIFF tags (acquisition tags first, ``TIFFTAG_DATETIME`` last);
3. a BigEarthNet ``<patch>_labels_metadata.json`` beside the raster;
4. a locations table (CSV or Parquet; see :mod:`geossl.data.locations`).

Anything that cannot be found is marked missing: models receive a ``meta_mask``
rather than NaN.
"""

import functools
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import rasterio
import rasterio.errors
import rasterio.warp
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import shape

from geossl.data.locations import Location, LocationTable
from geossl.data.tile_metadata import TileMetadata, lonlat_problem, parse_datetime
from geossl.errors import (
    DateParseError,
    GeosslInputError,
    LabelsFileError,
    MissingCRSError,
    RasterReadError,
    reading,
)

#: Sentinel-2 product and tile names, as in ``T18SVG_20160112T160652_B02.tif``,
#: ``T18SVG_20160112_B02.tif``, ``S2A_MSIL2A_20170613T101031_87_48``.
SENTINEL2_FILENAME_REGEX = r"""
    ^.*?_(?P<date>\d{8}(?:T\d{6})?)(?=[_.]|$)
"""

#: GeoTIFF tags that hold an acquisition time, most specific first. TIFFTAG_DATETIME
#: is last because writers often stamp it with the processing time instead.
ACQUISITION_TAGS = (
    'ACQUISITION_DATE',
    'DATATAKE_1_DATATAKE_SENSING_START',
    'SENSING_TIME',
    'PRODUCT_START_TIME',
    'DATE_ACQUIRED',
    'TIFFTAG_DATETIME',
)

#: Suffix of BigEarthNet v1 per-patch metadata files.
BIGEARTHNET_METADATA_SUFFIX = '_labels_metadata.json'

#: Image file extensions geossl reads, lower case.
IMAGE_SUFFIXES = ('.tif', '.tiff', '.jpg', '.jpeg', '.png')


@functools.lru_cache(maxsize=64)
def _to_wgs84(crs_text: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(crs_text), 4326, always_xy=True)


def crs_to_text(crs: object) -> str:
    """A stable, hashable text form of a CRS: ``EPSG:n`` where possible, else WKT.

    Args:
        crs: anything pyproj understands (rasterio CRS, pyproj CRS, WKT, EPSG code).

    Returns:
        The CRS as text.
    """
    pyproj_crs = CRS.from_user_input(crs)
    epsg = pyproj_crs.to_epsg()
    return f'EPSG:{epsg}' if epsg is not None else pyproj_crs.to_wkt()


def centre_lonlat(
    crs: str, bounds: tuple[float, float, float, float]
) -> tuple[float, float]:
    """Longitude and latitude of the centre of ``bounds``.

    Args:
        crs: CRS of ``bounds`` as text (see :func:`crs_to_text`).
        bounds: (minx, miny, maxx, maxy).

    Returns:
        (lon, lat) in WGS84 degrees, lon in [-180, 180).
    """
    x = (bounds[0] + bounds[2]) / 2
    y = (bounds[1] + bounds[3]) / 2
    lon, lat = _to_wgs84(crs).transform(x, y)
    return ((lon + 180.0) % 360.0) - 180.0, lat


def footprint_wgs84(
    crs: str, bounds: tuple[float, float, float, float]
) -> shapely.Geometry:
    """The footprint of ``bounds`` in EPSG:4326, split at the antimeridian if needed.

    Args:
        crs: CRS of ``bounds`` as text.
        bounds: (minx, miny, maxx, maxy).

    Returns:
        A polygon (or multipolygon) in WGS84 degrees.
    """
    box = shapely.box(*bounds)
    # Densify so that curved edges of projected footprints survive the reprojection
    # (not a footprint of no area, which GEOS before 3.14 cannot densify).
    if box.area > 0:
        box = shapely.segmentize(box, (bounds[2] - bounds[0]) / 8)
    # GDAL splits geometries that cross the antimeridian.
    geometry = rasterio.warp.transform_geom(
        crs, 'EPSG:4326', shapely.geometry.mapping(box)
    )
    return shape(geometry)


def _first_raster(folder: Path) -> Path | None:
    rasters = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return rasters[0] if rasters else None


def bigearthnet_metadata_file(path: Path) -> Path | None:
    """The BigEarthNet ``<patch>_labels_metadata.json`` for a patch folder or band file.

    Args:
        path: a patch folder or one of its band files.

    Returns:
        The JSON file, or None if there is none.
    """
    folder = path if path.is_dir() else path.parent
    candidate = folder / f'{folder.name}{BIGEARTHNET_METADATA_SUFFIX}'
    return candidate if candidate.is_file() else None


def read_bigearthnet_json(path: Path) -> dict[str, object]:
    """Load a BigEarthNet metadata JSON file.

    Args:
        path: the ``_labels_metadata.json`` file.

    Returns:
        The parsed JSON object.

    Raises:
        LabelsFileError: if the file is not valid JSON, or holds labels,
            coordinates, a projection or a date of another type than
            BigEarthNet's.
    """
    with reading(path, 'JSON', LabelsFileError):
        metadata = json.loads(path.read_bytes())
    if not isinstance(metadata, dict):
        raise LabelsFileError(path, 'holds no JSON object of patch metadata')
    expected = {
        'labels': lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        'coordinates': lambda v: (
            isinstance(v, dict)
            and all(_is_number(v.get(key)) for key in ('ulx', 'uly', 'lrx', 'lry'))
        ),
        'projection': lambda v: isinstance(v, str),
        'acquisition_date': lambda v: isinstance(v, str),
    }
    for key, fits in expected.items():
        if key in metadata and not fits(metadata[key]):
            raise LabelsFileError(
                path, f'{key!r} is not what BigEarthNet metadata holds there'
            )
    return metadata


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class _RasterFacts:
    crs: str | None
    bounds: tuple[float, float, float, float] | None
    tags: Mapping[str, str]


def _raster_facts(path: Path) -> _RasterFacts:
    if path.stat().st_size == 0:
        raise RasterReadError(path, 'is empty (0 bytes)')
    with reading(path, 'a raster', RasterReadError), warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            crs, bounds, tags = src.crs, tuple(src.bounds), src.tags()
    return _RasterFacts(crs_to_text(crs) if crs is not None else None, bounds, tags)


@dataclass(frozen=True)
class MetadataReader:
    """Reads where and when raster files and sample folders were taken.

    What it reads is a :class:`~geossl.data.tile_metadata.TileMetadata`.

    Args:
        filename_regex: regular expression (``re.VERBOSE``, matched against the file
            or folder name like TorchGeo's ``filename_regex``) with a ``date`` group;
            None to skip file names. Defaults to the Sentinel-2 naming convention.
        date_format: :func:`datetime.strptime` format of the ``date`` group, or None
            for ISO 8601 (``20160112``, ``20160112T160652``, ``2016-01-12``).
        locations: optional locations table (CSV or Parquet, see
            :mod:`geossl.data.locations`) that fills in what the data itself lacks;
            samples it does not name keep a missing location.
        require_location: if True, a raster with no CRS, no BigEarthNet metadata and
            no locations table raises :class:`~.MissingCRSError`; if False its
            location is marked missing.
    """

    filename_regex: str | None = SENTINEL2_FILENAME_REGEX
    date_format: str | None = None
    locations: str | Path | None = None
    require_location: bool = True

    def __post_init__(self) -> None:
        if (
            self.filename_regex is not None
            and 'date' not in re.compile(self.filename_regex, re.VERBOSE).groupindex
        ):
            raise DateParseError(
                'filename_regex', 'has no (?P<date>...) group to read the date from'
            )

    @functools.cached_property
    def location_table(self) -> LocationTable | None:
        """The locations table, read once; None without one."""
        return None if self.locations is None else LocationTable(self.locations)

    def read(self, path: str | Path, sample_id: str | None = None) -> TileMetadata:
        """Read where and when one raster file or sample folder was taken.

        Args:
            path: a raster file, or a folder holding one sample's band files
                (BigEarthNet patch layout).
            sample_id: its path relative to the data's root, by which a locations
                table may name it.

        Returns:
            The tile's metadata, with missing parts set to None.

        Raises:
            RasterReadError: if the raster is empty or unreadable.
            MissingCRSError: if no location can be found and one is required.
            DateParseError: if a date is found but does not parse.
        """
        path = Path(path)
        raster = _first_raster(path) if path.is_dir() else path
        facts = (
            _raster_facts(raster)
            if raster is not None
            else _RasterFacts(None, None, {})
        )
        json_path = bigearthnet_metadata_file(path)
        patch = read_bigearthnet_json(json_path) if json_path is not None else {}
        table = self.location_table
        listed = table.find(path, sample_id) if table is not None else None

        crs, bounds = facts.crs, facts.bounds
        if crs is None and 'coordinates' in patch and 'projection' in patch:
            corners = patch['coordinates']
            with reading(json_path, 'a CRS (projection)', LabelsFileError):
                crs = crs_to_text(patch['projection'])
            bounds = (corners['ulx'], corners['lry'], corners['lrx'], corners['uly'])

        lon: float | None = None
        lat: float | None = None
        footprint = None
        if crs is not None and bounds is not None:
            lon, lat = centre_lonlat(crs, bounds)
            if problem := lonlat_problem(lon, lat):
                raise GeosslInputError(
                    raster or path,
                    f'lies off the Earth ({problem}); check its CRS and geotransform',
                )
            footprint = footprint_wgs84(crs, bounds)
        elif listed is not None and listed.lon is not None and listed.lat is not None:
            lon, lat = listed.lon, listed.lat
            footprint = shapely.Point(lon, lat)
        elif self.require_location and table is None:
            raise MissingCRSError(
                raster or path,
                'has no CRS, so its location is unknown; georeference it, list it in '
                'a locations table (a CSV or Parquet file with path,lon,lat: '
                '--data.locations; geossl index: --locations), or make location '
                'optional (--data.location_optional true; geossl index: '
                '--location_optional true)',
            )

        time = self._time(path, facts.tags, patch, json_path, listed)
        if crs is None:
            bounds = None
        return TileMetadata(lon, lat, time, crs, bounds, footprint)

    def _time(
        self,
        path: Path,
        tags: Mapping[str, str],
        patch: Mapping[str, object],
        json_path: Path | None,
        listed: Location | None,
    ) -> datetime | None:
        if self.filename_regex is not None:
            match = re.match(self.filename_regex, path.name, re.VERBOSE)
            if match is not None and match.group('date'):
                return self._parse(match.group('date'), self.date_format, path, 'name')
        for tag in ACQUISITION_TAGS:
            if tags.get(tag):
                return self._parse(tags[tag], None, path, f'tag {tag}')
        if patch.get('acquisition_date'):
            return self._parse(
                str(patch['acquisition_date']), None, json_path, 'acquisition_date'
            )
        return listed.time if listed is not None else None

    @staticmethod
    def _parse(
        text: str, date_format: str | None, where: Path | None, field: str
    ) -> datetime:
        try:
            return parse_datetime(text, date_format)
        except ValueError:
            expected = f'format {date_format!r}' if date_format else 'ISO 8601'
            raise DateParseError(
                where or field, f'{field} {text!r} is not a date in {expected}'
            ) from None


def reader_settings(reader: MetadataReader) -> str:
    """The settings of a metadata reader as JSON, kept with an index.

    Args:
        reader: the reader.

    Returns:
        Its settings, with the locations table's path made absolute and its
        contents' SHA-256, so that an index is read again when the table changes.
    """
    settings = asdict(reader)
    if reader.location_table is not None:
        settings['locations'] = str(reader.location_table.path.resolve())
        settings['locations_sha256'] = reader.location_table.digest
    return json.dumps(settings, sort_keys=True)
