"""Where and when samples were taken, from a table, for data that does not say.

A locations table is a CSV or Parquet file with a column that names samples, WGS 84
``lon`` and ``lat`` and, optionally, ``datetime`` (ISO 8601; naive times are UTC).
The naming column is the first of :data:`NAME_COLUMNS` the table has: a path or a
file name. A sample matches a row

1. by path: the row's path relative to the table's folder, or relative to the data's
   root (the sample's id in the index), or absolute;
2. else by file name, with or without its extension, where only one row has it.

So EuroSAT's published ``eurosat_metadata.parquet`` (``image_id`` such as
``AnnualCrop_1.tif``) locates the RGB JPEGs ``AnnualCrop/AnnualCrop_1.jpg`` as it
is. What the data itself says wins (a raster's georeferencing, a date in its name
or tags); the table fills in what it lacks. Samples the table does not name keep a
missing location, and are counted in a warning.
"""

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import pandas as pd

from geossl.data.tile_metadata import lonlat_problem, parse_datetime
from geossl.errors import GeosslInputError, LabelsFileError, reading

#: Columns that name the samples, in the order they are looked for.
NAME_COLUMNS = ('path', 'file', 'filename', 'file_name', 'image_id', 'image')

#: File suffixes read as Parquet; any other file is read as CSV.
PARQUET_SUFFIXES = ('.parquet', '.pq')


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


def _read_cells(path: Path) -> pd.DataFrame:
    """Every cell of a CSV or Parquet table as text, empty cells as ''."""
    if not path.is_file():
        raise LabelsFileError(path, 'does not exist or is not a file')
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    with reading(path, 'a locations table (CSV or Parquet)', LabelsFileError):
        if not parquet:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding='utf-8')
        frame = pd.read_parquet(path)
    return frame.astype(object).where(frame.notna(), '').astype(str)


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
        cells = _read_cells(self.path)
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
        csv = self.path.suffix.lower() not in PARQUET_SUFFIXES
        self._by_path: dict[Path, Location] = {}
        self._by_entry: dict[str, Location] = {}
        names: dict[str, list[Location]] = {}
        first_row: dict[str, str] = {}
        for number, row in enumerate(cells.to_dict('records')):
            where = f'line {number + 2}' if csv else f'row {number + 1}'
            entry = row[self.name_column].strip()
            if not entry or '\0' in entry:
                raise LabelsFileError(
                    self.path, f'{where}: the {self.name_column} is empty or holds NUL'
                )
            if entry in first_row:
                raise LabelsFileError(
                    self.path,
                    f'{where}: {entry!r} is named twice (first at {first_row[entry]})',
                )
            first_row[entry] = where
            location = self._location(row, where)
            relative = PurePosixPath(entry.replace('\\', '/'))
            self._by_entry[relative.as_posix()] = location
            self._by_path[(self.path.parent / relative).resolve()] = location
            for key in {relative.name, relative.stem}:
                names.setdefault(key, []).append(location)
        # A name that two rows share is no name to go by.
        self._by_name = {key: rows[0] for key, rows in names.items() if len(rows) == 1}

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
        found = self._by_path.get(path.resolve())
        if found is None and sample_id is not None:
            found = self._by_entry.get(PurePosixPath(sample_id).as_posix())
        if found is None:
            found = self._by_name.get(path.name) or self._by_name.get(path.stem)
        return found

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
