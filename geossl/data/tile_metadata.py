"""Where and when one tile was taken, as a model reads it.

Readers of rasters, file names and tables fill in a :class:`TileMetadata`
(:mod:`geossl.data.metadata`), checking places with :func:`lonlat_problem` and
reading times with :func:`parse_datetime`; datasets turn it into the ``meta`` and
``meta_mask`` tensors of each sample. This module needs no geospatial library, so
datasets held in memory carry metadata without one.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    import shapely

#: Which metadata a model uses, or a dataset's samples have.
MetadataParts = Literal['location+time', 'location', 'time', 'none']


@dataclass(frozen=True)
class TileMetadata:
    """Where, when and how big one tile is.

    Attributes:
        lon: longitude of the footprint centre in WGS84 degrees, or None if unknown.
        lat: latitude of the footprint centre in WGS84 degrees, or None if unknown.
        time: acquisition time (timezone-aware, UTC), or None if unknown.
        crs: the raster's CRS as a user-input string (``EPSG:32618`` or WKT), or None.
        bounds: (minx, miny, maxx, maxy) in ``crs``, or None if not georeferenced.
        footprint: the footprint polygon in EPSG:4326, or None if not georeferenced.
    """

    lon: float | None
    lat: float | None
    time: datetime | None
    crs: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    footprint: 'shapely.Geometry | None' = None

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """Encode as model inputs.

        Returns:
            ``meta``: float32 ``[lon, lat, unix_time_seconds]`` with zeros where
            missing (float32 keeps the time to about two minutes, ample for
            day-of-year encodings), and ``meta_mask``: bool, True where present.
        """
        has_location = self.lon is not None and self.lat is not None
        has_time = self.time is not None
        meta = torch.tensor(
            [
                self.lon if has_location else 0.0,
                self.lat if has_location else 0.0,
                self.time.timestamp() if has_time else 0.0,
            ],
            dtype=torch.float32,
        )
        mask = torch.tensor([has_location, has_location, has_time])
        return meta, mask


_TIFF_DATETIME_FORMAT = '%Y:%m:%d %H:%M:%S'


def lonlat_problem(lon: float, lat: float) -> str | None:
    """What is wrong with a longitude and latitude, if anything.

    Args:
        lon: longitude in degrees.
        lat: latitude in degrees.

    Returns:
        None for a place on Earth; otherwise why not, as a sentence fragment.
    """
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        return f'longitude {lon:.6g} is outside -180..180'
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        return f'latitude {lat:.6g} is outside -90..90'
    return None


def parse_datetime(text: str, date_format: str | None = None) -> datetime:
    """Parse an acquisition time; naive times are taken to be UTC.

    Args:
        text: the date or date-time text.
        date_format: a :func:`datetime.strptime` format, or None to accept ISO 8601
            (basic or extended, ``Z`` suffix included) and the TIFF form
            ``YYYY:MM:DD HH:MM:SS``.

    Returns:
        A timezone-aware UTC datetime.

    Raises:
        ValueError: if the text does not parse.
    """
    text = text.strip()
    if date_format is not None:
        parsed = datetime.strptime(text, date_format)
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = datetime.strptime(text, _TIFF_DATETIME_FORMAT)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
