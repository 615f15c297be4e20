"""Labelled / unlabelled / validation / test splits, seeded and saved with the run.

Held-out samples (validation and test) are drawn first, at random (stratified by
class), by spatial blocks (whole blocks of about ``block_size_km`` go to one split,
to test robustness to places never seen), by longitude (the easternmost samples,
as TorchGeo's ``EuroSATSpatial``: a region never seen) or by time (the latest
acquisitions, to test robustness to dates never seen). Or the test set is a region
(polygons of a vector file, as TorchGeo's ``roi_split``), or one fold of a k-fold
cross-validation over the strategy's blocks or dates, balanced by class as
scikit-learn's ``StratifiedGroupKFold``; or the whole split comes from a file
(:mod:`~geossl.data.split_files`). From the remaining labelled samples, a few per
class (or a fraction) keep their labels; the rest join the unlabelled pool.

Semi-supervised training has a leak that supervised splits do not: unlabelled
samples of a held-out region would train the model on the imagery it is tested on.
Unlabelled samples of held-out blocks, dates, regions or longitudes are therefore
``excluded``, as are training samples, labelled or not, within ``buffer_km`` of a
test sample (spatial cross-validation's buffer, as blockCV's ``cv_buffer``).

A split is written to a CSV file whose first line records how it was made, and is
reloaded from there, so a resumed or repeated run uses the very same samples.
"""

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from geossl.atomic import atomic_output
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.geodesy import nearest_km
from geossl.errors import SplitError, reading

SplitName = Literal['labelled', 'unlabelled', 'val', 'test', 'excluded']

#: The split names, in file order. ``excluded`` samples are neither trained on
#: nor evaluated.
SPLIT_NAMES: tuple[SplitName, ...] = (
    'labelled',
    'unlabelled',
    'val',
    'test',
    'excluded',
)

#: The held-out splits, whose distances to the training samples a run reports.
HELD_OUT: tuple[SplitName, ...] = ('test', 'val')

#: What a split file's samples the file does not name become.
UnnamedSamples = Literal['unlabelled', 'error']

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
        file: the whole split, from a file (:mod:`~geossl.data.split_files`);
            the options above that choose samples are then unused.
        unnamed_samples: what the samples a split file does not name become:
            ``unlabelled`` (counted in the log) or ``error``.
        test_region: a vector file whose polygons hold the test samples (their
            centres); ``test_fraction`` is then unused.
        val_region: a vector file whose polygons hold the validation samples;
            None draws ``val_fraction`` by the strategy.
        folds: k of a k-fold cross-validation over the strategy's groups
            (``random``: samples; ``spatial``: blocks; ``temporal``: dates); the
            test set is fold ``fold``, and ``test_fraction`` is unused.
        fold: which fold is tested, from 0 to ``folds - 1``.
        buffer_km: leave out of training every sample, labelled or not, within
            this distance of a test sample; 0 for none.
    """

    labels_per_class: int | None = 4
    label_fraction: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    strategy: SplitStrategy = 'random'
    block_size_km: float = 50.0
    seed: int = 0
    file: str | None = None
    unnamed_samples: UnnamedSamples = 'unlabelled'
    test_region: str | None = None
    val_region: str | None = None
    folds: int | None = None
    fold: int = 0
    buffer_km: float = 0.0

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
        self._check_held_out()

    def _check_held_out(self) -> None:
        """Refuse held-out options that contradict each other."""
        if self.unnamed_samples not in ('unlabelled', 'error'):
            raise SplitError(
                'unnamed_samples',
                f'is {self.unnamed_samples!r}, not unlabelled or error',
            )
        chosen = [
            name
            for name, value in (
                ('test_region', self.test_region),
                ('val_region', self.val_region),
                ('folds', self.folds),
            )
            if value is not None
        ]
        if self.file is not None and chosen:
            raise SplitError(
                'split_file', f'gives the whole split; leave {chosen[0]} unset'
            )
        if self.folds is not None:
            if self.test_region is not None:
                raise SplitError(
                    'folds', 'choose the test set: leave test_region unset'
                )
            if self.folds < 2:
                raise SplitError('folds', f'is {self.folds}; use 2 or more')
            if not 0 <= self.fold < self.folds:
                raise SplitError(
                    'fold', f'is {self.fold}; use 0 to {self.folds - 1} of {self.folds}'
                )
            if self.strategy == 'longitude':
                raise SplitError(
                    'folds', 'need strategy random, spatial or temporal, not longitude'
                )
        if self.buffer_km < 0:
            raise SplitError('buffer_km', f'is {self.buffer_km}; use 0 or more')


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
    """Each sample's block of about ``km`` x ``km`` (-1 outside ``pool``)."""
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
    blocks = np.full(len(dataset), -1, dtype=np.int64)
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
        in dataset order, and with ``folds``, ``fold``: the fold each labelled
        sample is tested in (-1 for the others).

    Raises:
        SplitError: if the data cannot satisfy the request.
    """
    if config.file is not None:
        from geossl.data.split_files import read_split_file

        split = read_split_file(config.file, dataset, config.unnamed_samples)
        _buffer(dataset, split, config)
        _check_labels_left(dataset, np.flatnonzero(split == 'labelled'), config)
        return pd.DataFrame({'sample_id': dataset.sample_ids, 'split': split})
    rng = np.random.default_rng(config.seed)
    labelled = np.flatnonzero(dataset.is_labelled)
    if len(labelled) == 0:
        raise SplitError('dataset', 'has no labelled samples to split')
    split = np.full(len(dataset), 'unlabelled', dtype=object)
    fold_of = _held_out(dataset, config, labelled, split, rng)
    _buffer(dataset, split, config)
    train_pool = labelled[split[labelled] == 'unlabelled']
    _check_labels_left(dataset, train_pool, config)
    split[_pick_labelled(dataset, train_pool, config, rng)] = 'labelled'
    frame = pd.DataFrame({'sample_id': dataset.sample_ids, 'split': split})
    if fold_of is not None:
        frame['fold'] = fold_of
    return frame


def _held_out(
    dataset: GeoClassificationDataset,
    config: SplitConfig,
    labelled: np.ndarray,
    split: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Mark validation, test and excluded samples in ``split``; the folds, if any.

    Test and validation samples are labelled ones; the unlabelled samples of the
    regions, blocks, dates or longitudes they were drawn from are excluded.
    """
    test_area = val_area = fold_of = None
    if config.test_region is not None:
        test_area = _inside(dataset, config.test_region, 'test_region')
    elif config.folds is not None:
        test_area, fold_of = _fold(dataset, config, labelled, rng)
    if config.val_region is not None:
        val_area = _inside(dataset, config.val_region, 'val_region')
        if test_area is not None and (both := int((val_area & test_area).sum())):
            raise SplitError(
                'val_region',
                f'and the test set share {both} samples; hold out apart regions',
            )
    is_labelled = np.zeros(len(dataset), dtype=bool)
    is_labelled[labelled] = True
    for area, name in ((test_area, 'test'), (val_area, 'val')):
        if area is not None:
            split[area & is_labelled] = name
            split[area & ~is_labelled] = 'excluded'
    if test_area is None or val_area is None:
        # What no region or fold chose is drawn by the strategy from the rest.
        pool = labelled[split[labelled] == 'unlabelled']
        fractions = (
            0.0 if val_area is not None else config.val_fraction,
            0.0 if test_area is not None else config.test_fraction,
        )
        val, test = _strategy_holdout(dataset, config, pool, fractions, rng)
        split[val], split[test] = 'val', 'test'
        reach = _reach(dataset, config, np.concatenate([val, test]))
        split[reach & ~is_labelled & (split == 'unlabelled')] = 'excluded'
    return fold_of


def _strategy_holdout(
    dataset: GeoClassificationDataset,
    config: SplitConfig,
    pool: np.ndarray,
    fractions: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test samples of ``pool``, by the split's strategy."""
    if config.strategy == 'random':
        return _stratified_holdout(_strata(dataset), pool, fractions, rng)
    if config.strategy == 'spatial':
        blocks = _spatial_blocks(dataset, pool, config.block_size_km)
        shuffled = rng.permutation(np.unique(blocks[pool]))
        rank = np.empty(shuffled.max() + 1, dtype=np.int64)
        rank[shuffled] = np.arange(len(shuffled))
        order = pool[np.argsort(rank[blocks[pool]], kind='stable')]
        return _ordered_holdout(order, blocks, fractions)
    # The latest acquisitions, or the easternmost places, are held out.
    values = _ordering(dataset, config, pool)
    order = pool[np.argsort(values.iloc[pool].to_numpy())[::-1]]
    return _ordered_holdout(order, values.to_numpy(), fractions)


def _ordering(
    dataset: GeoClassificationDataset, config: SplitConfig, pool: np.ndarray
) -> pd.Series:
    """The index column that orders a temporal or longitude split, checked."""
    column, what = _ORDERED_BY[config.strategy]
    values = dataset.index[column]
    missing = int(values.iloc[pool].isna().sum())
    if missing:
        raise SplitError(
            'strategy',
            f'{config.strategy} split needs {what} for every sample; '
            f'{missing} lack one',
        )
    return values


def _reach(
    dataset: GeoClassificationDataset, config: SplitConfig, held: np.ndarray
) -> np.ndarray:
    """Every sample of the blocks, dates or longitudes held-out samples came from.

    Samples without the location or date that would place them are not reached.
    """
    reached = np.zeros(len(dataset), dtype=bool)
    if not len(held) or config.strategy == 'random':
        return reached
    column, _ = _ORDERED_BY.get(config.strategy, (None, None))
    if config.strategy == 'spatial' or config.folds is not None:
        columns = ['lon', 'lat'] if config.strategy == 'spatial' else [column]
        placed = dataset.index[columns].notna().all(axis=1).to_numpy()
        groups = _groups(dataset, config, np.union1d(np.flatnonzero(placed), held))
        return np.isin(groups, groups[held])
    values = dataset.index[column]
    return (values >= values.iloc[held].min()).fillna(False).to_numpy(dtype=bool)


def _inside(dataset: GeoClassificationDataset, path: str, option: str) -> np.ndarray:
    """Which samples' centres lie inside the polygons of a vector file.

    Raises:
        SplitError: if they hold no sample.
    """
    import shapely

    from geossl.data.regions import Region

    region = Region.read(path).in_crs('EPSG:4326')
    lon = dataset.index['lon'].to_numpy(dtype=float)
    lat = dataset.index['lat'].to_numpy(dtype=float)
    located = np.isfinite(lon) & np.isfinite(lat)
    inside = np.zeros(len(dataset), dtype=bool)
    inside[located] = shapely.contains_xy(region, lon[located], lat[located])
    if not inside.any():
        west, south, east, north = region.bounds
        raise SplitError(
            path,
            f'({option}) holds no sample: its polygons span lon {west:.3f} to '
            f'{east:.3f}, lat {south:.3f} to {north:.3f}',
        )
    return inside


def _groups(
    dataset: GeoClassificationDataset, config: SplitConfig, pool: np.ndarray
) -> np.ndarray:
    """Each sample's fold group: its block, its day, or itself (-1 outside ``pool``)."""
    if config.strategy == 'spatial':
        return _spatial_blocks(dataset, pool, config.block_size_km)
    groups = np.full(len(dataset), -1, dtype=np.int64)
    if config.strategy == 'temporal':
        days = pd.to_datetime(_ordering(dataset, config, pool)).dt.floor('D')
        groups[pool] = pd.factorize(days.iloc[pool])[0]
    else:
        groups[pool] = pool
    return groups


#: What the groups of each strategy's folds are, for messages.
_FOLD_GROUPS = {'random': 'samples', 'spatial': 'blocks', 'temporal': 'dates'}


def _fold(
    dataset: GeoClassificationDataset,
    config: SplitConfig,
    labelled: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The samples of the tested fold's groups, and the fold of each labelled one.

    Groups (blocks, dates, or single samples) are assigned to the folds as
    scikit-learn's ``StratifiedGroupKFold`` assigns them: each fold about the same
    size and, where the groups allow it, the same share of every class.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = _groups(dataset, config, labelled)
    count = len(np.unique(groups[labelled]))
    if count < config.folds:
        raise SplitError(
            'folds',
            f'is {config.folds} but the labelled samples fall in '
            f'{count} {_FOLD_GROUPS[config.strategy]}',
        )
    folds = StratifiedGroupKFold(
        config.folds, shuffle=True, random_state=int(rng.integers(2**31))
    )
    fold_of = np.full(len(dataset), -1, dtype=np.int64)
    with warnings.catch_warnings():
        # Classes rarer than k are still spread as well as their groups allow.
        warnings.simplefilter('ignore', UserWarning)
        parts = folds.split(labelled, _strata(dataset)[labelled], groups[labelled])
        for number, (_, tested) in enumerate(parts):
            fold_of[labelled[tested]] = number
    test = labelled[fold_of[labelled] == config.fold]
    area = np.zeros(len(dataset), dtype=bool)
    area[test] = True
    return area | _reach(dataset, config, test), fold_of


def _buffer(
    dataset: GeoClassificationDataset, split: np.ndarray, config: SplitConfig
) -> None:
    """Exclude training samples within ``buffer_km`` of a test sample."""
    if not config.buffer_km:
        return
    test = np.flatnonzero(split == 'test')
    train = np.flatnonzero(np.isin(split, ['labelled', 'unlabelled']))
    lon = dataset.index['lon'].to_numpy(dtype=float)
    lat = dataset.index['lat'].to_numpy(dtype=float)
    both = np.concatenate([test, train])
    missing = int((~np.isfinite(lon[both]) | ~np.isfinite(lat[both])).sum())
    if missing:
        raise SplitError(
            'buffer_km',
            f'needs a location for every sample; {missing} lack one',
        )
    near = train[nearest_km(lon, lat, train, test) <= config.buffer_km]
    split[near] = 'excluded'


def _check_labels_left(
    dataset: GeoClassificationDataset, train: np.ndarray, config: SplitConfig
) -> None:
    """Refuse a buffer that leaves the training samples without a class."""
    if not config.buffer_km:
        return
    labelled = np.flatnonzero(dataset.is_labelled)
    missing = np.flatnonzero(_classes(dataset, labelled) & ~_classes(dataset, train))
    if len(missing):
        raise SplitError(
            'buffer_km',
            f'is {config.buffer_km:g}: it leaves no training label of class '
            f'{dataset.classes[missing[0]]!r}; use a smaller buffer or other '
            'held-out samples',
        )


def _classes(dataset: GeoClassificationDataset, positions: np.ndarray) -> np.ndarray:
    """Which classes the samples at ``positions`` have, as a mask of classes."""
    targets = dataset.targets[positions]
    if dataset.multilabel:
        return np.clip(targets, 0, None).sum(axis=0) > 0
    return np.isin(np.arange(len(dataset.classes)), targets)


#: How a split file's first line starts; the settings follow as JSON.
_HEADER = '# geossl splits '


def _config_line(config: SplitConfig) -> str:
    return _HEADER + json.dumps(dataclasses.asdict(config), sort_keys=True)


def _made_with(header: str, config: SplitConfig) -> bool:
    """Whether a split file's first line records ``config``.

    Settings the line does not name did not exist when it was written: the split
    was made as their defaults make it.
    """
    if not header.startswith(_HEADER):
        return False
    try:
        saved = json.loads(header.removeprefix(_HEADER))
    except json.JSONDecodeError:
        return False
    defaults = dataclasses.asdict(SplitConfig())
    return defaults | saved == dataclasses.asdict(config)


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
    if not _made_with(header, config):
        raise SplitError(
            path,
            f'was made with other settings ({header[len(_HEADER) :]}); use another '
            'run folder',
        )
    if (
        not {'sample_id', 'split'}
        <= set(splits.columns)
        <= {'sample_id', 'split', 'fold'}
        or not splits['split'].isin(SPLIT_NAMES).all()
    ):
        raise SplitError(path, 'is not a geossl split file (columns sample_id,split)')
    if 'fold' in splits:
        splits['fold'] = splits['fold'].astype(int)
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


def held_out_distances(
    dataset: GeoClassificationDataset, splits: pd.DataFrame
) -> dict[str, dict[str, tuple[float, float]]]:
    """How far held-out samples lie from the nearest training sample of each kind.

    A random split of spatially autocorrelated data tests on near-copies of its
    training samples; this says so at a glance.

    Args:
        dataset: the data (``lon`` and ``lat`` of its index).
        splits: its split.

    Returns:
        For each held-out split that has located samples, and each training split
        (``labelled``, ``unlabelled``) that does: the median and the 5th percentile
        of the distance in km.
    """
    lon = dataset.index['lon'].to_numpy(dtype=float)
    lat = dataset.index['lat'].to_numpy(dtype=float)
    names = splits['split'].to_numpy()
    located = np.isfinite(lon) & np.isfinite(lat)
    distances: dict[str, dict[str, tuple[float, float]]] = {}
    for held in HELD_OUT:
        sources = np.flatnonzero((names == held) & located)
        for train in ('labelled', 'unlabelled'):
            targets = np.flatnonzero((names == train) & located)
            if len(sources) and len(targets):
                found = nearest_km(lon, lat, sources, targets)
                quantiles = np.quantile(found, [0.5, 0.05])
                distances.setdefault(held, {})[train] = tuple(map(float, quantiles))
    return distances


def describe_split(
    dataset: GeoClassificationDataset, splits: pd.DataFrame
) -> list[str]:
    """The lines a run logs of its split: the counts, and each held-out set's reach.

    Args:
        dataset: the data.
        splits: its split.

    Returns:
        The counts of each split, then per held-out split the median and the 5th
        percentile of the distance to the nearest training sample of each kind.
    """
    counts = split_counts(splits)
    lines = ['Split: ' + ', '.join(f'{n} {name}' for name, n in counts.items())]
    for held, nearest in held_out_distances(dataset, splits).items():
        parts = [
            f'{train} {_km(median)} median, {_km(low)} at the 5th percentile'
            for train, (median, low) in nearest.items()
        ]
        lines.append(f'{held}: nearest training sample, ' + '; '.join(parts))
    return lines


def _km(distance: float) -> str:
    return f'{distance:.2g} km' if distance < 10 else f'{distance:.0f} km'


def split_counts(splits: pd.DataFrame) -> dict[str, int]:
    """How many samples each split holds.

    Args:
        splits: from :func:`make_splits`.

    Returns:
        Counts keyed by split name, every name present.
    """
    counts = splits['split'].value_counts()
    return {name: int(counts.get(name, 0)) for name in SPLIT_NAMES}
