"""The spatiotemporal teacher at full scale: EuroSAT RGB with its tiles' real places.

The paper's own benchmark (Bernhard et al., *Context Matters*, ECAI 2024): the
27,000 EuroSAT RGB tiles at 32 px, located by the published
``eurosat_metadata.parquet`` (``--data.locations``; EuroSAT has no dates, so the
teacher sees location only, as in the paper's code), ImageNet's
``tf_efficientnet_lite0`` with geossl's fine-tuning recipe and the label-efficiency
budget (B=8, mu=2, 1,000 steps: ``label_efficiency.PRETRAINED_BUDGET``), 2 and 4
labels per class, 3 seeds, model selection on validation only.

Runs: supervised; FixMatch; ST-FixMatch (FixMatch's pseudo-labels from the
metadata-fed teacher, the image-only student tested); FreeMatch and ST-FreeMatch on
the random split. The teacher of each ST run is also tested with its metadata: the
paper's *metadata-as-input* model. Splits:

* ``random``: 20 % test, 5 % validation, stratified;
* ``longitude``: as TorchGeo's ``EuroSATSpatial``: train the western 60 %,
  validate the next 20 %, test the eastern 20 % (a region never seen);
* ``block``: 50 km blocks, whole blocks held out (20 % test, 5 % validation).

Per run (``runs.csv``, written as each finishes; a stopped table goes on where it
was, and a stopped run from its last validation): the student's test error, the
teacher's with metadata, the pseudo-labels' accuracy and mask ratio over the last
quarter of training, minutes. ``summary.json`` holds the table, the per-seed paired
differences ST minus plain, and the two goals; ``curves.png`` the teacher's and
plain FixMatch's pseudo-label accuracy and mask ratio over training.

    .venv/bin/python benchmarks/teacher_student.py           # the table
    .venv/bin/python benchmarks/teacher_student.py --quick   # a smoke run
"""

import argparse
import inspect
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from label_efficiency import (
    PRETRAINED_BUDGET,
    Row,
    add_data_argument,
    add_run_arguments,
    add_workers_argument,
    finished,
    train_and_test,
)
from matplotlib.figure import Figure
from report import EUROSAT_LOCATIONS, RESULTS, markdown
from tqdm import tqdm
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

from geossl.data.datasets import InMemoryDataset
from geossl.data.splits import SplitConfig
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: Each run: its algorithm, and whether the teacher makes the pseudo-labels.
RUNS = {
    'supervised': ('supervised', False),
    'FixMatch': ('fixmatch', False),
    'ST-FixMatch': ('fixmatch', True),
    'FreeMatch': ('freematch', False),
    'ST-FreeMatch': ('freematch', True),
}

#: Each ST run and the plain run it is compared with, seed by seed.
PAIRS = {'ST-FixMatch': 'FixMatch', 'ST-FreeMatch': 'FreeMatch'}

#: How each split holds out tiles.
SPLITS = {
    'random': {'val_fraction': 0.05, 'test_fraction': 0.2},
    'longitude': {'strategy': 'longitude', 'val_fraction': 0.2, 'test_fraction': 0.2},
    'block': {
        'strategy': 'spatial',
        'block_size_km': 50.0,
        'val_fraction': 0.05,
        'test_fraction': 0.2,
    },
}

#: The runs of each split: FreeMatch's pair on the random split only, which keeps
#: the table within its budget (docs/teacher-student.md).
SPLIT_RUNS = {
    'random': list(RUNS),
    'longitude': ['supervised', 'FixMatch', 'ST-FixMatch'],
    'block': ['supervised', 'FixMatch', 'ST-FixMatch'],
}

#: The task's teacher settings an ST run's result depends on: a run made with other
#: settings (geossl's defaults changed since) is run again.
TEACHER_SETTINGS = (
    'metadata',
    'location_encoding',
    'location_scales',
    'fusion',
    'distillation',
    'lambda_d',
    'metadata_dim',
    'metadata_dropout',
    'neighbours',
    'neighbour_radius_km',
)

#: What the curves show: logged column -> title.
CURVES = {
    'train_pseudo_label_accuracy': 'pseudo-label accuracy',
    'train_mask_ratio': 'mask ratio',
}

#: The settings a row's result depends on, so that a rerun keeps it.
BUDGET = ('steps', 'backbone', 'batch_size', 'mu', 'image_size', 'val_every')


def _key(row: dict[str, object]) -> tuple[object, ...]:
    return row['split'], row['labels_per_class'], row['seed'], row['run']


def _teacher_settings(run: str, teacher: dict[str, object]) -> str:
    """The teacher's settings of a run as JSON: geossl's defaults and ``--teacher``.

    Args:
        run: the run's name.
        teacher: the settings given, over the defaults.

    Returns:
        The settings, or '' for a run without a teacher.
    """
    if not RUNS[run][1]:
        return ''
    parameters = inspect.signature(SemiSupervisedTask).parameters
    defaults = {k: parameters[k].default for k in TEACHER_SETTINGS}
    return json.dumps(defaults | teacher)


def _setting(text: str) -> tuple[str, object]:
    """``name=value`` of ``--teacher``, the value as JSON where it parses."""
    name, _, value = text.partition('=')
    if name not in TEACHER_SETTINGS:
        raise argparse.ArgumentTypeError(f'{name}: not one of {TEACHER_SETTINGS}')
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _last_quarter(curve: pd.DataFrame, column: str) -> float | None:
    values = curve[column].dropna().to_numpy() if column in curve else []
    if not len(values):
        return None
    return float(values[-max(1, len(values) // 4) :].mean())


def _run(
    dataset: InMemoryDataset,
    key: tuple[str, int, int, str],
    options: argparse.Namespace,
    weights: str,
) -> Row:
    split, labels, seed, run = key
    algorithm, teacher_student = RUNS[run]
    name = f'{options.steps}-steps-{split}-{labels}-labels-seed{seed}-{run}'
    run_dir = options.output / 'runs' / name
    config = SplitConfig(labels_per_class=labels, seed=seed, **SPLITS[split])
    extra = {'teacher': options.teacher} if teacher_student else {}
    row = train_and_test(
        dataset,
        algorithm,
        labels,
        seed,
        options,
        run_dir,
        split=config,
        name=name,
        weights=weights,
        **extra,
    )
    # The logs stay; the checkpoints (60 MB a run) are not needed once tested.
    shutil.rmtree(run_dir / 'checkpoints', ignore_errors=True)
    curve = pd.read_csv(options.output / row['curve'])
    return row | {
        'split': split,
        'run': run,
        'val_every': options.val_every,
        'teacher_settings': _teacher_settings(run, options.teacher),
        'pseudo_label_accuracy': _last_quarter(curve, 'train_pseudo_label_accuracy'),
        'mask_ratio': _last_quarter(curve, 'train_mask_ratio'),
    }


def _spread(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return ''
    if len(values) == 1:
        return f'{values.iloc[0]:.1f}'
    return f'{values.mean():.1f} +- {values.std(ddof=1):.1f}'


def _table(runs: pd.DataFrame) -> list[dict[str, object]]:
    """Mean and spread over seeds of each split, label count and run."""
    rows = []
    order = {name: i for i, name in enumerate(RUNS)}
    runs = runs.assign(order=runs['run'].map(order))
    for (split, labels, _), group in runs.groupby(
        ['split', 'labels_per_class', 'order'], sort=False
    ):
        teacher = group.get('teacher_test_error', pd.Series(dtype=float))
        rows.append(
            {
                'split': split,
                'labels / class': labels,
                'run': group['run'].iloc[0],
                'seeds': len(group),
                'student error %': _spread(group['test_error']),
                'teacher error % (metadata as input)': _spread(teacher),
                'pseudo-label accuracy': group['pseudo_label_accuracy'].mean(),
                'mask ratio': group['mask_ratio'].mean(),
                'min / run': group['train_minutes'].median(),
            }
        )
    split_order = {name: i for i, name in enumerate(SPLITS)}
    return sorted(
        rows,
        key=lambda r: (split_order[r['split']], r['labels / class'], order[r['run']]),
    )


def _pairs(runs: pd.DataFrame) -> list[dict[str, object]]:
    """Per seed: each ST run's student error minus its plain run's, and their ratio."""
    indexed = runs.set_index(['split', 'labels_per_class', 'seed', 'run'])
    rows = []
    for (split, labels, seed, run), row in indexed.iterrows():
        plain = PAIRS.get(run)
        if plain is None or (split, labels, seed, plain) not in indexed.index:
            continue
        reference = indexed.loc[(split, labels, seed, plain)]
        rows.append(
            {
                'split': split,
                'labels_per_class': labels,
                'seed': seed,
                'run': run,
                'difference': row['test_error'] - reference['test_error'],
                'ratio': row['test_error'] / reference['test_error'],
                'teacher_minus_student': row.get('teacher_test_error', np.nan)
                - row['test_error'],
            }
        )
    return rows


def _goals(pairs: pd.DataFrame, runs: pd.DataFrame) -> dict[str, object]:
    """The issue's two goals, measured on the runs so far."""
    fixmatch = pairs[pairs['run'] == 'ST-FixMatch'] if len(pairs) else pairs
    goals: dict[str, object] = {}
    for labels, group in (
        fixmatch[fixmatch['split'] == 'random'].groupby('labels_per_class')
        if len(fixmatch)
        else []
    ):
        goals[f'random, {labels} labels'] = {
            'mean ratio ST-FixMatch / FixMatch': group['ratio'].mean(),
            'ST lower in every seed': bool((group['difference'] < 0).all()),
            'seeds': len(group),
            'met': bool(
                group['ratio'].mean() <= 0.8 and (group['difference'] < 0).all()
            ),
        }
    longitude = runs[(runs['split'] == 'longitude') & (runs['run'] == 'ST-FixMatch')]
    for labels, group in longitude.groupby('labels_per_class'):
        plain = runs[
            (runs['split'] == 'longitude')
            & (runs['run'] == 'FixMatch')
            & (runs['labels_per_class'] == labels)
        ]
        student = group['test_error'].mean()
        teacher = group['teacher_test_error'].mean()
        goals[f'longitude, {labels} labels'] = {
            'ST-FixMatch student error %': student,
            'FixMatch error %': plain['test_error'].mean() if len(plain) else None,
            'metadata-as-input (teacher) error %': teacher,
            'met': bool(
                len(plain)
                and student <= plain['test_error'].mean() + 1
                and student < teacher
            ),
        }
    return goals


def _curves(runs: pd.DataFrame, output: Path) -> None:
    """Pseudo-label accuracy and mask ratio over training: teacher's against plain."""
    settings = sorted(
        {(r.split, r.labels_per_class) for r in runs.itertuples()},
        key=lambda s: (list(SPLITS).index(s[0]), s[1]),
    )
    if not settings:
        return
    figure = Figure(figsize=(11, 3.2 * len(settings)), layout='tight')
    axes = figure.subplots(len(settings), 2, squeeze=False)
    for row, (split, labels) in enumerate(settings):
        chosen = runs[
            (runs['split'] == split)
            & (runs['labels_per_class'] == labels)
            & (runs['run'] != 'supervised')
        ]
        for (column, title), axis in zip(CURVES.items(), axes[row], strict=True):
            for run, group in chosen.groupby('run', sort=False):
                curve = pd.concat(pd.read_csv(output / c) for c in group['curve'])
                curve = curve.dropna(subset=[column]).groupby('step')[column].mean()
                # A plain run dashed, its ST run solid, in one colour.
                style = '-' if run.startswith('ST-') else '--'
                colour = f'C{list(RUNS).index(run.removeprefix("ST-")) % 10}'
                axis.plot(curve.index, curve.to_numpy(), style, color=colour, label=run)
            axis.set_title(f'{split} split, {labels} labels/class: {title}')
            axis.set_xlabel('step')
            axis.set_ylim(0, 1)
            axis.grid(alpha=0.3)
        axes[row][0].legend(fontsize='small')
    figure.savefig(output / 'curves.png', dpi=100)


def _report(runs: list[dict[str, object]], options: argparse.Namespace) -> str:
    """Write ``summary.json`` and ``curves.png`` of the runs so far; the table."""
    frame = pd.DataFrame(runs)
    table = _table(frame)
    pairs = pd.DataFrame(_pairs(frame))
    summary = {
        'settings': {key: getattr(options, key) for key in BUDGET}
        | {'seeds': options.seeds, 'threads': torch.get_num_threads()},
        'table': table,
        'paired': pairs.to_dict(orient='records'),
        'goals': _goals(pairs, frame),
    }
    path = options.output / 'summary.json'
    path.write_text(json.dumps(summary, indent=2, default=float) + '\n')
    _curves(frame, options.output)
    formats = {
        'split': '',
        'labels / class': '',
        'run': '',
        'seeds': '',
        'student error %': '',
        'teacher error % (metadata as input)': '',
        'pseudo-label accuracy': '.3f',
        'mask ratio': '.3f',
        'min / run': '.1f',
    }
    return markdown(table, formats)


def main() -> None:
    """Train every run of the table; print it and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument(
        '--locations',
        type=Path,
        default=EUROSAT_LOCATIONS,
        help="the tiles' places table; a packed file keeps those it was packed with",
    )
    parser.add_argument('--output', type=Path, default=RESULTS / 'teacher_student')
    parser.add_argument('--steps', type=int, default=PRETRAINED_BUDGET['steps'])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--labels_per_class', type=int, nargs='+', default=[2, 4])
    parser.add_argument(
        '--splits', nargs='+', choices=list(SPLITS), default=list(SPLITS)
    )
    parser.add_argument('--runs', nargs='+', choices=list(RUNS), default=list(RUNS))
    parser.add_argument(
        '--quick', action='store_true', help='1 seed, 4 labels, 60 steps: a smoke run'
    )
    parser.add_argument(
        '--teacher',
        type=_setting,
        nargs='+',
        default=[],
        metavar='NAME=VALUE',
        help="teacher settings of the ST runs over geossl's defaults, for ablations "
        '(e.g. neighbours=8); give them another --output',
    )
    add_workers_argument(parser)
    add_run_arguments(parser)
    parser.set_defaults(**PRETRAINED_BUDGET)
    options = parser.parse_args()
    options.teacher = dict(options.teacher)
    if options.quick:
        options.steps, options.seeds, options.val_every = 60, [0], 30
        options.labels_per_class = [4]
        options.output = options.output / 'quick'  # a run folder: not kept
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    options.output.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    wanted = [
        (split, labels, seed, run)
        for seed in options.seeds
        for split in options.splits
        for labels in options.labels_per_class
        for run in SPLIT_RUNS[split]
        if run in options.runs
    ]
    budget = {key: getattr(options, key) for key in BUDGET}
    runs, others = [], []
    if listing.exists():
        for row in pd.read_csv(listing).to_dict(orient='records'):
            same = all(row.get(key) == value for key, value in budget.items())
            teacher = row.get('teacher_settings')
            same &= (teacher if isinstance(teacher, str) else '') == (
                _teacher_settings(row['run'], options.teacher)
            )
            (runs if same and _key(row) in wanted else others).append(row)
    plan = [key for key in wanted if key not in {_key(r) for r in runs}]
    weights = str(lite0_weights(LITE0_WEIGHTS))
    rows = finished(plan, _run, options, weights)
    for row in tqdm(rows, 'Runs', len(plan), unit='run'):
        key = _key(row)
        teacher = row.get('teacher_test_error')
        tqdm.write(
            f'{key}: student error {row["test_error"]:.1f} %'
            + ('' if teacher is None else f', teacher {teacher:.1f} %')
            + f', {row["train_minutes"]:.1f} min'
        )
        runs.append(row)
        pd.DataFrame(others + runs).to_csv(listing, index=False)
        _report(runs, options)
    print(
        f'\nEuroSAT RGB with locations, {options.image_size} px, {options.backbone} '
        f'from ImageNet, B={options.batch_size}, mu={options.mu}, {options.steps} '
        f'steps, seeds {options.seeds}'
    )
    print(_report(runs, options) if runs else 'no runs')


if __name__ == '__main__':
    main()
