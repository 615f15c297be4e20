"""Tables that name samples: rows matched to a dataset's samples by path or name.

A locations table (:mod:`geossl.data.locations`) and a split file
(:mod:`geossl.data.split_files`) name samples the same way. The naming column is
the first of the table's kind that the table has, a path or a file name, and a
sample matches a row

1. by path: the row's path relative to the table's folder, or relative to the data's
   root (the sample's id in the index), or absolute;
2. else by file name, with or without its extension, where only one row has it.
"""

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pandas as pd

from geossl.errors import LabelsFileError, reading

#: Columns that name the samples, in the order they are looked for.
NAME_COLUMNS = ('path', 'file', 'filename', 'file_name', 'image_id', 'image')

#: File suffixes read as Parquet.
PARQUET_SUFFIXES = ('.parquet', '.pq')

#: File suffixes read as CSV; other files are read as vector files (GeoPackage...).
CSV_SUFFIXES = ('.csv', '.txt')


def read_cells(path: Path, what: str, vector: bool = False) -> pd.DataFrame:
    """Every cell of a CSV, Parquet or (with ``vector``) vector file as text.

    Args:
        path: the file.
        what: what the file should be, for the message if it cannot be read.
        vector: read files that are neither CSV nor Parquet as vector files
            (their attributes; the geometry is left out); else as CSV.

    Returns:
        The cells, empty ones as ''.

    Raises:
        LabelsFileError: if the file is missing or unreadable.
    """
    if not path.is_file():
        raise LabelsFileError(path, 'does not exist or is not a file')
    suffix = path.suffix.lower()
    with reading(path, what, LabelsFileError):
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        elif vector and suffix not in CSV_SUFFIXES:
            import geopandas as gpd

            frame = pd.DataFrame(gpd.read_file(path, ignore_geometry=True))
        else:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding='utf-8')
    return frame.astype(object).where(frame.notna(), '').astype(str)


def row_names(path: Path) -> str:
    """How a table's rows are named in messages: lines of CSV, rows otherwise."""
    return 'line' if path.suffix.lower() in CSV_SUFFIXES else 'row'


def where(path: Path, number: int) -> str:
    """A row's place in messages: ``line 2`` for a CSV's first row, else ``row 1``.

    Args:
        path: the table.
        number: the row's 0-based position.

    Returns:
        Its place.
    """
    if row_names(path) == 'line':
        return f'line {number + 2}'
    return f'row {number + 1}'


class SampleRows:
    """The rows of a table that names samples, found by a sample's path or name.

    Args:
        path: the table, whose folder paths in it are relative to.
        entries: each row's path or file name.
        column: the column they are in, for messages.

    Raises:
        LabelsFileError: naming the row, for an empty entry or one named twice.
    """

    def __init__(self, path: Path, entries: Sequence[str], column: str) -> None:
        self.path = path
        self._by_path: dict[Path, int] = {}
        self._by_entry: dict[str, int] = {}
        names: dict[str, list[int]] = {}
        first_row: dict[str, str] = {}
        for number, text in enumerate(entries):
            entry = text.strip()
            place = where(path, number)
            if not entry or '\0' in entry:
                raise LabelsFileError(
                    path, f'{place}: the {column} is empty or holds NUL'
                )
            if entry in first_row:
                raise LabelsFileError(
                    path,
                    f'{place}: {entry!r} is named twice (first at {first_row[entry]})',
                )
            first_row[entry] = place
            relative = PurePosixPath(entry.replace('\\', '/'))
            self._by_entry[relative.as_posix()] = number
            self._by_path[(path.parent / relative).resolve()] = number
            for key in {relative.name, relative.stem}:
                names.setdefault(key, []).append(number)
        # A name that two rows share is no name to go by.
        self._by_name = {key: rows[0] for key, rows in names.items() if len(rows) == 1}

    def find(self, path: Path, sample_id: str | None = None) -> int | None:
        """The row of one sample, by path, else by file name.

        Args:
            path: the sample's file or folder.
            sample_id: its path relative to the data's root, if known.

        Returns:
            The row's position, or None if the table does not name it.
        """
        return next(iter(self.find_all(path, sample_id)), None)

    def find_all(
        self, path: Path, sample_id: str | None = None, by_name: bool = True
    ) -> list[int]:
        """Every row that names one sample, the one :meth:`find` takes first.

        Args:
            path: the sample's file or folder.
            sample_id: its path relative to the data's root, if known.
            by_name: also the rows that name it by file name alone.

        Returns:
            The rows' positions, by path first, then by file name.
        """
        keys = [
            self._by_path.get(path.resolve()),
            None
            if sample_id is None
            else self._by_entry.get(PurePosixPath(sample_id).as_posix()),
        ]
        if by_name:
            keys += [self._by_name.get(path.name), self._by_name.get(path.stem)]
        return list(dict.fromkeys(row for row in keys if row is not None))
