"""Splits as files: a user's own split read in, and a run's split written as a map.

**Your own split.** A CSV, Parquet or any vector file (GeoPackage, GeoJSON, ...)
with a column that names the samples and a ``split`` column. The naming column is
``sample_id`` (the index's ids, as a run's ``splits.csv`` has them) or, as in a
locations table, a path or file name, matched by path, else by unique file name
(:mod:`~geossl.data.sample_tables`). Each ``split`` is one of ``labelled``,
``unlabelled``, ``val``, ``test``, ``excluded`` (neither trained on nor evaluated),
or ``train``: labelled where the sample has a label, else unlabelled. The samples
the file does not name go to the unlabelled pool, counted in the log, or are
refused (``unnamed_samples='error'``).

**A scene's labels file** with a ``split`` column is a split file too: give it as
the split file (it names no samples), and each labelled chip takes the split of
the feature it was cut from; the unlabelled chips of the grid are the samples it
does not name.

**The split as a map.** Each run writes ``splits.gpkg`` beside ``splits.csv``: a
point per sample at its place, with its split (and fold), to open in QGIS and see
where test and training samples lie.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from geossl.atomic import atomic_output
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.sample_tables import NAME_COLUMNS, SampleRows, read_cells, where
from geossl.errors import SplitError

#: The columns that name a split file's samples, in the order they are looked for.
SPLIT_NAME_COLUMNS = ('sample_id', *NAME_COLUMNS)

#: What a split file's ``split`` column may say.
SPLIT_FILE_NAMES = ('labelled', 'unlabelled', 'val', 'test', 'excluded', 'train')

logger = logging.getLogger(__name__)


def read_split_file(
    path: str | Path, dataset: GeoClassificationDataset, unnamed_samples: str
) -> np.ndarray:
    """Each sample's split, as a file gives it.

    Args:
        path: the CSV, Parquet or vector file.
        dataset: the data: each sample's id, path and whether it is labelled.
        unnamed_samples: ``unlabelled`` or ``error``, for samples the file does
            not name.

    Returns:
        The split of each sample, in dataset order.

    Raises:
        SplitError: naming the file (and row) for a missing column, an unknown
            split name, a row that names no sample or several, a sample named
            twice, a label asked of an unlabelled sample, or (with ``error``)
            samples it does not name.
    """
    path = Path(path)
    cells = read_cells(path, 'a split file (CSV, Parquet or vector file)', vector=True)
    column = next((c for c in SPLIT_NAME_COLUMNS if c in cells), None)
    by_feature = column is None and 'feature' in dataset.index
    if (column is None and not by_feature) or 'split' not in cells:
        raise SplitError(
            path,
            f'lacks column {"split" if column else "/".join(SPLIT_NAME_COLUMNS)}; a '
            'split file has a column naming the samples and a split column',
        )
    names = cells['split'].str.strip().str.lower()
    odd = ~names.isin(SPLIT_FILE_NAMES)
    if odd.any():
        number = int(np.flatnonzero(odd)[0])
        raise SplitError(
            path,
            f'{where(path, number)}: split {cells["split"].iloc[number]!r} is not one '
            f'of {", ".join(SPLIT_FILE_NAMES)}',
        )
    if by_feature:
        # A scene's labels file: a chip is named by the feature it was cut from.
        features = dataset.index['feature'].astype('Int64')
        found = features.fillna(-1).to_numpy(dtype=np.int64)
        found[found >= len(cells)] = -1
    else:
        found = _named(path, cells[column], column, dataset)
    split = np.full(len(dataset), 'unlabelled', dtype=object)
    named = found >= 0
    split[named] = names.to_numpy()[found[named]]
    train = split == 'train'
    split[train] = np.where(dataset.is_labelled[train], 'labelled', 'unlabelled')
    asked = np.isin(split, ['labelled', 'val', 'test']) & ~dataset.is_labelled
    if asked.any():
        sample = int(np.flatnonzero(asked)[0])
        raise SplitError(
            path,
            f'{where(path, int(found[sample]))}: sample {dataset.sample_ids[sample]} '
            f'has no label, so it cannot be {split[sample]}',
        )
    unnamed = int((~named).sum())
    if unnamed and unnamed_samples == 'error':
        raise SplitError(
            path,
            f'does not name {unnamed} of the {len(dataset)} samples (the first: '
            f'{dataset.sample_ids[int(np.flatnonzero(~named)[0])]}); name them, or '
            'set unnamed_samples to unlabelled',
        )
    if unnamed:
        logger.info(
            '%s: %d of %d samples are not in it; they join the unlabelled pool',
            path,
            unnamed,
            len(dataset),
        )
    return split


def _named(
    path: Path, entries: pd.Series, column: str, dataset: GeoClassificationDataset
) -> np.ndarray:
    """The row naming each sample (-1 for none), every row naming one sample."""
    rows = SampleRows(path, entries.tolist(), column)
    index = dataset.index
    # Samples cut from one file (a scene's chips) are told apart by id alone.
    paths = index['path'] if index['path'].is_unique else index['sample_id']
    samples = list(zip(map(Path, paths), index['sample_id'], strict=True))
    matches = [rows.find_all(p, sample_id, by_name=False) for p, sample_id in samples]
    # A row that names a sample by its path names no other by its file name.
    by_path = {row for rows_of in matches for row in rows_of}
    for position, (p, sample_id) in enumerate(samples):
        if not matches[position]:
            named = rows.find_all(p, sample_id)
            matches[position] = [row for row in named if row not in by_path]
    _check_rows(path, entries, matches)
    return np.array([rows_of[0] if rows_of else -1 for rows_of in matches])


def _check_rows(path: Path, entries: pd.Series, matches: list[list[int]]) -> None:
    """Refuse samples that two rows name, rows that name several, or none."""
    for rows_of in matches:
        if len(rows_of) > 1:
            first, second = sorted(rows_of)[:2]
            raise SplitError(
                path,
                f'{where(path, second)}: {entries.iloc[second]!r} names the sample '
                f'{where(path, first)} names ({entries.iloc[first]!r}); name each '
                'sample once',
            )
    samples = np.bincount(
        [row for rows_of in matches for row in rows_of], minlength=len(entries)
    )
    for number, count in enumerate(samples):
        if count > 1:
            raise SplitError(
                path,
                f'{where(path, number)}: {entries.iloc[number]!r} names {count} '
                'samples (by file name); give their paths',
            )
        if not count:
            raise SplitError(
                path,
                f'{where(path, number)}: {entries.iloc[number]!r} names no sample of '
                'the data (matched by sample id, by path, or by unique file name)',
            )


def write_split_map(
    dataset: GeoClassificationDataset, splits: pd.DataFrame, path: str | Path
) -> None:
    """Write a run's split as a GeoPackage of points, atomically.

    Args:
        dataset: the data (``lon`` and ``lat`` of its index; samples without a
            location have no geometry).
        splits: its split (``sample_id``, ``split`` and, with folds, ``fold``).
        path: the GeoPackage.
    """
    import geopandas as gpd

    lon = dataset.index['lon'].to_numpy(dtype=float)
    lat = dataset.index['lat'].to_numpy(dtype=float)
    points = gpd.points_from_xy(lon, lat, crs='EPSG:4326')
    located = np.isfinite(lon) & np.isfinite(lat)
    frame = gpd.GeoDataFrame(
        splits.reset_index(drop=True).assign(label=dataset.index['label'].to_numpy()),
        geometry=gpd.GeoSeries(np.where(located, points, None), crs='EPSG:4326'),
    )
    with atomic_output(Path(path)) as partial:
        frame.to_file(partial, driver='GPKG', layer='splits')
