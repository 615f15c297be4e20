"""Where and when samples were taken, from a table, for data that does not say.

A locations table is a CSV or Parquet file with a column that names samples, WGS 84
``lon`` and ``lat`` and, optionally, ``datetime`` (ISO 8601; naive times are UTC).
Rows match samples by path, else by unique file name
(:mod:`~geossl.data.sample_tables`). So EuroSAT's published
``eurosat_metadata.parquet`` (``image_id`` such as ``AnnualCrop_1.tif``) locates the
RGB JPEGs ``AnnualCrop/AnnualCrop_1.jpg`` as it is. What the data itself says wins
(a raster's georeferencing, a date in its name or tags); the table fills in what it
lacks. Samples the table does not name keep a missing location, and are counted in
a warning.
"""

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from geossl.data.sample_tables import (
    NAME_COLUMNS,
    SampleRows,
    read_cells,
    where,
)
from geossl.data.tile_metadata import lonlat_problem, parse_datetime
from geossl.errors import GeosslInputError, LabelsFileError


@dataclass(frozen=True)
class Location:
    """Where and when one sample was taken, as a table gives it.

    Attributes:
        lon: longitude in WGS 84 degrees, or None where the cell is empty.
        lat: latitude in WGS 84 degrees, or None where the cell is empty.
        time: acquisition time (UTC), or None.
    """

    lon: float | None
    lat: float | None
    time: datetime | None


def _number(text: str, what: str, where: str, path: Path) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise LabelsFileError(
            path, f'{where}: {what} {text!r} is not a number'
        ) from None


class LocationTable:
    """A locations table, read and checked once, matched to samples by path or name.

    Args:
        path: the CSV or Parquet file.

    Raises:
        LabelsFileError: naming the file, and the row where it applies, for a
            table that cannot be read, lacks a column, names a sample twice, or
            holds a place off the Earth or a date that does not parse.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        cells = read_cells(self.path, 'a locations table (CSV or Parquet)')
        self.name_column = next((c for c in NAME_COLUMNS if c in cells), None)
        missing = [c for c in ('lon', 'lat') if c not in cells]
        if self.name_column is None:
            missing.insert(0, f'one of {"/".join(NAME_COLUMNS)}')
        if missing:
            raise LabelsFileError(
                self.path,
                f'lacks column(s) {", ".join(missing)}; a locations table has a path '
                'or file-name column, lon, lat and optionally datetime',
            )
        self.digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._rows = SampleRows(
            self.path, cells[self.name_column].tolist(), self.name_column
        )
        self._locations = [
            self._location(row, where(self.path, number))
            for number, row in enumerate(cells.to_dict('records'))
        ]

    def _location(self, row: dict[str, str], where: str) -> Location:
        lon = _number(row['lon'], 'lon', where, self.path)
        lat = _number(row['lat'], 'lat', where, self.path)
        if (
            lon is not None
            and lat is not None
            and (problem := lonlat_problem(lon, lat))
        ):
            raise LabelsFileError(self.path, f'{where}: {problem}')
        when = row.get('datetime', '').strip()
        try:
            time = parse_datetime(when) if when else None
        except ValueError:
            raise LabelsFileError(
                self.path, f'{where}: datetime {when!r} is not a date in ISO 8601'
            ) from None
        return Location(lon, lat, time)

    def find(self, path: Path, sample_id: str | None = None) -> Location | None:
        """The row of one sample, by path, else by file name.

        Args:
            path: the sample's file or folder.
            sample_id: its path relative to the data's root, if known.

        Returns:
            Its location, or None if the table does not name it.
        """
        found = self._rows.find(path, sample_id)
        return None if found is None else self._locations[found]

    def check_names(
        self, samples: Sequence[tuple[Path, str | None]], source: str | Path
    ) -> int:
        """Refuse a table that names no sample; count and warn of those it misses.

        Args:
            samples: each sample's path and id (see :meth:`find`).
            source: the data, for messages.

        Returns:
            How many samples the table names.

        Raises:
            GeosslInputError: if it names none of them.
        """
        named = sum(
            self.find(path, sample_id) is not None for path, sample_id in samples
        )
        if samples and not named:
            raise GeosslInputError(
                self.path,
                f'names none of the {len(samples)} samples of {source} (matched by '
                f'path relative to the data or the table, or by file name, from its '
                f'{self.name_column!r} column)',
            )
        if named < len(samples):
            warnings.warn(
                f'{self.path}: {len(samples) - named} of {len(samples)} samples of '
                f'{source} are not in it; their location is missing unless their '
                'data has one',
                UserWarning,
                stacklevel=2,
            )
        return named
