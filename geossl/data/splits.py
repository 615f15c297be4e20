"""Labelled / unlabelled / validation / test splits, seeded and saved with the run.

Held-out samples (validation and test) are drawn first, at random (stratified by
class), by spatial blocks (whole blocks of about ``block_size_km`` go to one split,
to test robustness to places never seen), by longitude (the easternmost samples,
as TorchGeo's ``EuroSATSpatial``: a region never seen) or by time (the latest
acquisitions, to test robustness to dates never seen). From the remaining labelled
samples, a few per class (or a fraction) keep their labels; the rest join the
unlabelled pool.

A split is written to a CSV file whose first line records how it was made, and is
reloaded from there, so a resumed or repeated run uses the very same samples.
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from geossl.atomic import atomic_output
from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import SplitError, reading

SplitName = Literal['labelled', 'unlabelled', 'val', 'test']

#: The split names, in file order.
SPLIT_NAMES: tuple[SplitName, ...] = ('labelled', 'unlabelled', 'val', 'test')

_KM_PER_DEGREE = 111.32


#: How held-out samples are chosen.
SplitStrategy = Literal['random', 'spatial', 'longitude', 'temporal']


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """How to split a dataset.

    Attributes:
        labels_per_class: labelled training samples per class (at least this many per
            class for multi-label data); None to use ``label_fraction``.
        label_fraction: fraction of the training pool that keeps its labels, drawn
            stratified by class; used when ``labels_per_class`` is None.
        val_fraction: fraction of labelled samples held out for validation.
        test_fraction: fraction of labelled samples held out for testing.
        strategy: how held-out samples are chosen: ``random`` (stratified),
            ``spatial`` (blocks of ``block_size_km``), ``longitude`` (test the
            easternmost, validate the next westward, train the rest) or
            ``temporal`` (latest dates).
        block_size_km: side of the spatial blocks.
        seed: random seed.
    """

    labels_per_class: int | None = 4
    label_fraction: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    strategy: SplitStrategy = 'random'
    block_size_km: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.labels_per_class is None and self.label_fraction is None:
            raise SplitError('labels_per_class', 'or label_fraction must be given')
        if self.labels_per_class is not None and self.labels_per_class < 1:
            raise SplitError(
                'labels_per_class', f'is {self.labels_per_class}, not >= 1'
            )
        if self.label_fraction is not None and not 0 < self.label_fraction <= 1:
            raise SplitError(
                'label_fraction', f'is {self.label_fraction}, not in (0, 1]'
            )
        if not 0 <= self.val_fraction + self.test_fraction < 1:
            raise SplitError(
                'val_fraction',
                f'+ test_fraction is {self.val_fraction + self.test_fraction}, '
                'not in [0, 1)',
            )
        if self.strategy not in ('random', 'spatial', 'longitude', 'temporal'):
            raise SplitError(
                'strategy',
                f'is {self.strategy!r}, not random, spatial, longitude or temporal',
            )


def _strata(dataset: GeoClassificationDataset) -> np.ndarray:
    """One stratum per sample: its class, or its rarest class for multi-label data."""
    if not dataset.multilabel:
        return dataset.targets.copy()
    targets = np.clip(dataset.targets, 0, None)
    frequency = targets.sum(axis=0)
    rarity = np.where(targets > 0, frequency[None, :], np.inf)
    return np.where(targets.any(axis=1), rarity.argmin(axis=1), -1)


def _shuffled_strata(
    strata: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """The members of ``pool`` grouped by stratum, each group shuffled."""
    return [
        rng.permutation(pool[strata[pool] == stratum])
        for stratum in np.unique(strata[pool])
    ]


def _stratified_holdout(
    strata: np.ndarray,
    pool: np.ndarray,
    fractions: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    val, test = [], []
    for members in _shuffled_strata(strata, pool, rng):
        n_val = round(fractions[0] * len(members))
        n_test = round(fractions[1] * len(members))
        val.append(members[:n_val])
        test.append(members[n_val : n_val + n_test])
    return np.concatenate(val), np.concatenate(test)


def _ordered_holdout(
    order: np.ndarray, groups: np.ndarray, fractions: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Fill test, then validation, with whole groups taken in ``order``."""
    test_target = fractions[1] * len(order)
    val_target = (fractions[0] + fractions[1]) * len(order)
    test, val, taken = [], [], 0
    for group in pd.unique(groups[order]):
        members = order[groups[order] == group]
        if taken < test_target:
            test.append(members)
        elif taken < val_target:
            val.append(members)
        else:
            break
        taken += len(members)
    empty = np.array([], dtype=np.int64)
    return (np.concatenate(val) if val else empty), (
        np.concatenate(test) if test else empty
    )


def _spatial_blocks(
    dataset: GeoClassificationDataset, pool: np.ndarray, km: float
) -> np.ndarray:
    lon = dataset.index['lon'].to_numpy(dtype=float)[pool]
    lat = dataset.index['lat'].to_numpy(dtype=float)[pool]
    missing = int(np.isnan(lon).sum() + np.isnan(lat).sum())
    if missing:
        raise SplitError(
            'strategy',
            f'spatial split needs a location for every sample; {missing} lack one',
        )
    rows = np.floor(lat * _KM_PER_DEGREE / km)
    # Column width in degrees grows towards the poles so blocks keep about km x km.
    columns = np.floor(
        lon
        * _KM_PER_DEGREE
        * np.cos(np.radians((rows + 0.5) * km / _KM_PER_DEGREE))
        / km
    )
    blocks = np.zeros(len(dataset), dtype=np.int64)
    blocks[pool] = pd.factorize(pd.Series(list(zip(rows, columns, strict=True))))[0]
    return blocks


#: The index column that orders the ``temporal`` and ``longitude`` splits, and
#: what it is.
_ORDERED_BY = {'temporal': ('datetime', 'a date'), 'longitude': ('lon', 'a location')}


def _pick_labelled(
    dataset: GeoClassificationDataset,
    pool: np.ndarray,
    config: SplitConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    if config.labels_per_class is None:
        chosen = [
            members[: math.ceil(config.label_fraction * len(members))]
            for members in _shuffled_strata(_strata(dataset), pool, rng)
        ]
        return np.concatenate(chosen)
    n = config.labels_per_class
    pool = rng.permutation(pool)
    targets = dataset.targets[pool]
    if not dataset.multilabel:
        chosen = []
        for c, name in enumerate(dataset.classes):
            members = pool[targets == c]
            if len(members) < n:
                raise SplitError(
                    'labels_per_class',
                    f'is {n} but class {name!r} has only {len(members)} '
                    'training samples',
                )
            chosen.append(members[:n])
        return np.concatenate(chosen)
    # Multi-label: take samples of the rarest classes first until each class present
    # in the pool appears at least n times.
    counts = np.zeros(len(dataset.classes))
    selected = np.zeros(len(pool), dtype=bool)
    for c in np.argsort(targets.sum(axis=0)):
        for row in np.flatnonzero((targets[:, c] > 0) & ~selected):
            if counts[c] >= n:
                break
            selected[row] = True
            counts += targets[row]
    return pool[selected]


def make_splits(dataset: GeoClassificationDataset, config: SplitConfig) -> pd.DataFrame:
    """Split a dataset.

    Args:
        dataset: the dataset; only its index and targets are read.
        config: how to split.

    Returns:
        A frame with columns ``sample_id`` and ``split`` (one of :data:`SPLIT_NAMES`),
        in dataset order.

    Raises:
        SplitError: if the data cannot satisfy the request.
    """
    rng = np.random.default_rng(config.seed)
    labelled = np.flatnonzero(dataset.is_labelled)
    if len(labelled) == 0:
        raise SplitError('dataset', 'has no labelled samples to split')
    fractions = (config.val_fraction, config.test_fraction)
    if config.strategy == 'random':
        val, test = _stratified_holdout(_strata(dataset), labelled, fractions, rng)
    elif config.strategy == 'spatial':
        blocks = _spatial_blocks(dataset, labelled, config.block_size_km)
        shuffled = rng.permutation(np.unique(blocks[labelled]))
        rank = np.empty(shuffled.max() + 1, dtype=np.int64)
        rank[shuffled] = np.arange(len(shuffled))
        order = labelled[np.argsort(rank[blocks[labelled]], kind='stable')]
        val, test = _ordered_holdout(order, blocks, fractions)
    else:
        # The latest acquisitions, or the easternmost places, are held out.
        column, what = _ORDERED_BY[config.strategy]
        values = dataset.index[column]
        if values.iloc[labelled].isna().any():
            missing = int(values.iloc[labelled].isna().sum())
            raise SplitError(
                'strategy',
                f'{config.strategy} split needs {what} for every sample; '
                f'{missing} lack one',
            )
        order = labelled[np.argsort(values.iloc[labelled].to_numpy())[::-1]]
        val, test = _ordered_holdout(order, values.to_numpy(), fractions)
    split = np.full(len(dataset), 'unlabelled', dtype=object)
    split[val] = 'val'
    split[test] = 'test'
    train_pool = labelled[split[labelled] == 'unlabelled']
    split[_pick_labelled(dataset, train_pool, config, rng)] = 'labelled'
    return pd.DataFrame({'sample_id': dataset.sample_ids, 'split': split})


def _config_line(config: SplitConfig) -> str:
    return '# geossl splits ' + json.dumps(dataclasses.asdict(config), sort_keys=True)


def save_splits(splits: pd.DataFrame, config: SplitConfig, path: str | Path) -> None:
    """Write splits to CSV atomically, the first line recording ``config``.

    Args:
        splits: from :func:`make_splits`.
        config: how they were made.
        path: the CSV file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as partial, partial.open('w', newline='') as f:
        f.write(_config_line(config) + '\n')
        splits.to_csv(f, index=False)


def load_or_make_splits(
    dataset: GeoClassificationDataset,
    config: SplitConfig,
    path: str | Path,
    save: bool = True,
) -> pd.DataFrame:
    """Reload the splits saved at ``path``, or make (and save) them.

    Args:
        dataset: the dataset.
        config: how to split.
        path: the CSV file of the run.
        save: save new splits to ``path``; False to leave that to the caller
            (e.g. once the data has been checked).

    Returns:
        The splits, in dataset order.

    Raises:
        SplitError: if the saved splits were made differently or list other samples.
    """
    path = Path(path)
    if not path.exists():
        splits = make_splits(dataset, config)
        if save:
            save_splits(splits, config, path)
        return splits
    with reading(path, 'a geossl split file', SplitError), path.open() as f:
        header = f.readline().rstrip('\n')
        splits = pd.read_csv(f, dtype=str)
    if header != _config_line(config):
        raise SplitError(
            path,
            f'was made with other settings ({header[16:]}); use another run folder',
        )
    if (
        set(splits.columns) != {'sample_id', 'split'}
        or not splits['split'].isin(SPLIT_NAMES).all()
    ):
        raise SplitError(path, 'is not a geossl split file (columns sample_id,split)')
    if splits['sample_id'].duplicated().any():
        first = splits['sample_id'][splits['sample_id'].duplicated()].iloc[0]
        raise SplitError(path, f'lists sample {first} twice')
    ordered = splits.set_index('sample_id').reindex(dataset.sample_ids)
    missing = int(ordered['split'].isna().sum())
    if missing or len(splits) != len(dataset):
        raise SplitError(
            path,
            f'lists {len(splits)} samples but the data has {len(dataset)} '
            f'({missing} not in the file); the data changed since the split was made',
        )
    return ordered.reset_index()


def split_counts(splits: pd.DataFrame) -> dict[str, int]:
    """How many samples each split holds.

    Args:
        splits: from :func:`make_splits`.

    Returns:
        Counts keyed by split name, every name present.
    """
    counts = splits['split'].value_counts()
    return {name: int(counts.get(name, 0)) for name in SPLIT_NAMES}
