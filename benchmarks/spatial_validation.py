"""How much a random split overstates accuracy, and whether the teacher's gain holds.

EuroSAT RGB with its 27,000 real places, the teacher-student table's budget
(ImageNet Lite0, B=8, mu=2, 1,000 steps, 4 labels per class): FixMatch and
ST-FixMatch under

* ``random``: 5-fold cross-validation over the tiles, each fold's share of every
  class alike (``SplitConfig(folds=5)``), one run per fold: the random k-fold of
  the literature's comparisons;
* ``blocks``: 5-fold spatial cross-validation over 50 km blocks, balanced by
  class (``strategy='spatial'``), one run per fold;
* ``blocks + buffer``: the same folds, and every training tile (labelled or not)
  within 10 km of a test tile left out.

Per run (``runs.csv``, written as each finishes; a stopped table goes on where it
was): accuracy, macro F1, kappa, and the median distance from a test tile to its
nearest training tile. ``summary.json`` and the printed table: per protocol and
algorithm, mean +- standard deviation over the folds, ST minus plain per fold, and
the random folds' mean accuracy minus the protocol's.

    .venv/bin/python benchmarks/spatial_validation.py            # the table
    .venv/bin/python benchmarks/spatial_validation.py --quick    # a smoke run
"""

import argparse
import logging
import shutil
import warnings
from pathlib import Path

import pandas as pd
from label_efficiency import (
    PRETRAINED_BUDGET,
    Row,
    add_data_argument,
    add_run_arguments,
    add_workers_argument,
    finished,
    train_and_test,
)
from report import EUROSAT_LOCATIONS, RESULTS, markdown, save
from teacher_student import PRIOR_AND_DROPOUT
from tqdm import tqdm
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

from geossl.data.datasets import InMemoryDataset
from geossl.data.splits import SplitConfig, held_out_distances, load_or_make_splits

#: Folds of every protocol's cross-validation.
FOLDS = 5

#: Each protocol: the split of one run, given its fold.
PROTOCOLS = {
    'random': lambda fold: {'folds': FOLDS, 'fold': fold},
    'blocks': lambda fold: {'strategy': 'spatial', 'folds': FOLDS, 'fold': fold},
    'blocks + buffer': lambda fold: {
        'strategy': 'spatial',
        'folds': FOLDS,
        'fold': fold,
        'buffer_km': 10.0,
    },
}

#: Each run: its algorithm and the teacher's settings, None for no teacher. The
#: table was measured with the neighbours' prior and the metadata dropout, geossl's
#: defaults then.
RUNS = {
    'FixMatch': ('fixmatch', None),
    'ST-FixMatch': ('fixmatch', PRIOR_AND_DROPOUT),
}

LABELS_PER_CLASS = 4

#: The settings the table was run with.
BUDGET = ('steps', 'batch_size', 'mu', 'backbone', 'image_size', 'val_every')

#: A run: protocol, fold, run name.
Key = tuple[str, int, str]


def _config(protocol: str, fold: int) -> SplitConfig:
    return SplitConfig(
        labels_per_class=LABELS_PER_CLASS,
        val_fraction=0.05,
        block_size_km=50.0,
        seed=0,
        **PROTOCOLS[protocol](fold),
    )


def _run(
    dataset: InMemoryDataset, key: Key, options: argparse.Namespace, weights: str
) -> Row:
    protocol, fold, run = key
    algorithm, teacher = RUNS[run]
    name = f'{protocol.replace(" + ", "-")}-fold{fold}-{run}'
    run_dir = options.output / 'runs' / name
    config = _config(protocol, fold)
    extra = {} if teacher is None else {'teacher': teacher}
    row = train_and_test(
        dataset,
        algorithm,
        LABELS_PER_CLASS,
        0,
        options,
        run_dir,
        split=config,
        name=name,
        weights=weights,
        **extra,
    )
    shutil.rmtree(run_dir / 'checkpoints', ignore_errors=True)
    # The split the run trained on, as it wrote it.
    splits = load_or_make_splits(dataset, config, run_dir / 'splits.csv', save=False)
    distances = held_out_distances(dataset, splits)['test']
    return row | {
        'protocol': protocol,
        'fold': fold,
        'run': run,
        'test_to_labelled_km': distances['labelled'][0],
        'test_to_unlabelled_km': distances['unlabelled'][0],
    }


def _key(row: Row) -> Key:
    return row['protocol'], int(row['fold']), row['run']


def _spread(values: pd.Series) -> str:
    if len(values) == 1:
        return f'{values.iloc[0]:.3f}'
    return f'{values.mean():.3f} +- {values.std(ddof=1):.3f}'


def _table(runs: pd.DataFrame) -> list[Row]:
    """Per protocol and run: the folds' mean and spread, ST minus plain, and how
    much the random folds' mean accuracy exceeds the protocol's."""
    rows = []
    for (protocol, run), group in runs.groupby(['protocol', 'run'], sort=False):
        plain = runs[(runs['protocol'] == protocol) & (runs['run'] == 'FixMatch')]
        paired = group.merge(plain, on='fold', suffixes=('', '_plain'))
        gain = 100 * (paired['accuracy'] - paired['accuracy_plain'])
        random = runs[(runs['protocol'] == 'random') & (runs['run'] == run)]
        overstated = 100 * (random['accuracy'].mean() - group['accuracy'].mean())
        rows.append(
            {
                'protocol': protocol,
                'run': run,
                'folds': len(group),
                'accuracy': _spread(group['accuracy']),
                'macro F1': _spread(group['test_f1_macro']),
                'kappa': _spread(group['test_kappa']),
                'ST - plain, points': ''
                if run == 'FixMatch'
                else ', '.join(f'{g:+.1f}' for g in gain),
                'random overstates by, points': ''
                if protocol == 'random'
                else f'{overstated:+.1f}',
                'test to nearest unlabelled, km': group[
                    'test_to_unlabelled_km'
                ].median(),
            }
        )
    order = {name: i for i, name in enumerate(PROTOCOLS)}
    return sorted(rows, key=lambda r: (order[r['protocol']], r['run']))


def main() -> None:
    """Train every protocol, fold and run; print the table and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument('--locations', type=Path, default=EUROSAT_LOCATIONS)
    parser.add_argument('--output', type=Path, default=RESULTS / 'spatial_validation')
    parser.add_argument('--steps', type=int, default=PRETRAINED_BUDGET['steps'])
    parser.add_argument(
        '--quick', action='store_true', help='fold 0 only, 30 steps: a smoke run'
    )
    add_workers_argument(parser)
    add_run_arguments(parser)
    parser.set_defaults(**PRETRAINED_BUDGET)
    options = parser.parse_args()
    folds = range(FOLDS)
    if options.quick:
        options.steps, options.val_every = 30, 15
        options.output = options.output / 'quick'  # a run folder: not kept
        folds = range(1)
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    options.output.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    runs = pd.read_csv(listing).to_dict(orient='records') if listing.exists() else []
    done = {_key(row) for row in runs}
    plan = [
        (protocol, fold, run)
        for protocol in PROTOCOLS
        for fold in folds
        for run in RUNS
        if (protocol, fold, run) not in done
    ]
    weights = str(lite0_weights(LITE0_WEIGHTS))
    for row in tqdm(finished(plan, _run, options, weights), 'Runs', len(plan)):
        row['accuracy'] = 1 - row['test_error'] / 100
        runs.append(row)
        pd.DataFrame(runs).to_csv(listing, index=False)
        tqdm.write(f'{_key(row)}: accuracy {row["accuracy"]:.3f}')
    table = _table(pd.DataFrame(runs))
    settings = {key: getattr(options, key) for key in BUDGET}
    save('summary', table, settings, options.output)
    formats = dict.fromkeys(table[0], '') | {'test to nearest unlabelled, km': '.2f'}
    print(markdown(table, formats))


if __name__ == '__main__':
    main()
