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
differences ST minus plain, and the goals; ``curves.png`` the teacher's and
plain FixMatch's pseudo-label accuracy and mask ratio over training.

``--curve`` is the budget curve: FixMatch and ST-FixMatch at 1,000 and 4,000 steps
on the random split with 4 labels per class and 50 km blocks with 2 (the longitude
split with 2 at 1,000 only), and for each ST run a FixMatch run at **equal time**:
the steps that fit the ST run's minutes, from the ratio of their seconds per step,
measured once on this machine (``speed.json``) before the first such run. On the
random split with 4 labels at 1,000 steps it also measures the levers toward a
cheaper or better teacher (``CURVE_LEVERS``): a shared backbone, an EMA backbone, a
warm-up, the ``concat`` fusion.

    .venv/bin/python benchmarks/teacher_student.py           # the table
    .venv/bin/python benchmarks/teacher_student.py --curve   # the budget curve
    .venv/bin/python benchmarks/teacher_student.py --quick   # a smoke run
"""

import argparse
import json
import logging
import shutil
import warnings
from dataclasses import asdict
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
from geossl.tasks.teacher_student import TeacherStudentOptions

#: The neighbours' prior and the metadata dropout: geossl's defaults from 2026-12-05
#: to 2026-12-07, which the check across regions turned off again
#: (docs/teacher-student.md).
PRIOR_AND_DROPOUT = {'neighbours': 8, 'metadata_dropout': 0.5}

#: Each run: its algorithm, and the teacher that makes the pseudo-labels (its
#: settings over geossl's defaults and ``--teacher``) or None for none.
RUNS = {
    'supervised': ('supervised', None),
    'FixMatch': ('fixmatch', None),
    'ST-FixMatch': ('fixmatch', {}),
    'ST-FixMatch, shared backbone': ('fixmatch', {'image_backbone': 'shared'}),
    'ST-FixMatch, EMA backbone': ('fixmatch', {'image_backbone': 'ema'}),
    'ST-FixMatch, prior and dropout': ('fixmatch', PRIOR_AND_DROPOUT),
    # Which of the two costs across regions: the dropout without the prior.
    'ST-FixMatch, dropout': ('fixmatch', PRIOR_AND_DROPOUT | {'neighbours': 0}),
    'FixMatch, equal time': ('fixmatch', None),
    # Levers toward a teacher that earns its minutes, measured on one setting.
    'ST-FixMatch, warm-up': ('fixmatch', {'warmup_steps': 200}),
    'ST-FixMatch, concat': ('fixmatch', {'fusion': 'concat'}),
    'FreeMatch': ('freematch', None),
    'ST-FreeMatch': ('freematch', {}),
}

#: Each ST run and the plain run it is compared with, seed by seed, at equal steps.
PAIRS = {
    'ST-FixMatch': 'FixMatch',
    'ST-FixMatch, shared backbone': 'FixMatch',
    'ST-FixMatch, EMA backbone': 'FixMatch',
    'ST-FixMatch, prior and dropout': 'FixMatch',
    'ST-FixMatch, dropout': 'FixMatch',
    'ST-FixMatch, warm-up': 'FixMatch',
    'ST-FixMatch, concat': 'FixMatch',
    'ST-FreeMatch': 'FreeMatch',
}

#: Each ST run and the plain run given the steps that fit its minutes. These
#: teachers all have a network of their own, so one ratio of step costs serves.
EQUAL_TIME = {
    'ST-FixMatch': 'FixMatch, equal time',
    'ST-FixMatch, prior and dropout': 'FixMatch, equal time',
    'ST-FixMatch, dropout': 'FixMatch, equal time',
}

#: The budget curve: each (split, labels per class) and its budgets in steps.
CURVE = {
    ('random', 4): (1000, 4000),
    ('block', 2): (1000, 4000),
    ('longitude', 2): (1000,),
}

#: The runs of the budget curve.
CURVE_RUNS = ['FixMatch', 'ST-FixMatch', 'FixMatch, equal time']

#: The levers, each measured on one setting of the curve (split, labels per class,
#: steps) before it could become a default.
CURVE_LEVERS = {
    ('random', 4, 1000): [
        'ST-FixMatch, shared backbone',
        'ST-FixMatch, EMA backbone',
        'ST-FixMatch, warm-up',
        'ST-FixMatch, concat',
    ],
}

#: The ST runs whose seconds per step are measured against FixMatch's; equal time
#: is ST-FixMatch's.
TIMED = ('ST-FixMatch', 'ST-FixMatch, shared backbone')

#: Steps of the speed measurement behind equal time (the median step is kept),
#: and how many times each run is measured.
SPEED_STEPS = 120
SPEED_ROUNDS = 2

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
    'random': ['supervised', 'FixMatch', 'ST-FixMatch', 'FreeMatch', 'ST-FreeMatch'],
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
    'warmup_steps',
    'image_backbone',
)

#: What the curves show: logged column -> title.
CURVES = {
    'train_pseudo_label_accuracy': 'pseudo-label accuracy',
    'train_mask_ratio': 'mask ratio',
}

#: The settings a row's result depends on besides its key, so that a rerun keeps it.
BUDGET = ('backbone', 'batch_size', 'mu', 'image_size', 'val_every')

#: A run: split, labels per class, seed, run name and budget in steps.
Key = tuple[str, int, int, str, int]


def _key(row: dict[str, object]) -> Key:
    return (
        row['split'],
        row['labels_per_class'],
        row['seed'],
        row['run'],
        row['steps'],
    )


def _teacher_settings(run: str, teacher: dict[str, object]) -> str:
    """The teacher's settings of a run as JSON: geossl's defaults and ``--teacher``.

    Args:
        run: the run's name.
        teacher: the settings given, over the defaults.

    Returns:
        The settings, or '' for a run without a teacher.
    """
    if RUNS[run][1] is None:
        return ''
    return json.dumps(_teacher_defaults() | teacher | RUNS[run][1])


def _teacher_defaults() -> dict[str, object]:
    defaults = asdict(TeacherStudentOptions())
    return {name: defaults[name] for name in TEACHER_SETTINGS}


def _same_teacher(row: dict[str, object], teacher: dict[str, object]) -> bool:
    """Whether a listed run had the teacher asked for.

    A setting the row does not name did not exist when it ran: it had what is now
    that setting's default.
    """
    listed = row.get('teacher_settings')
    asked = RUNS[row['run']][1]
    if not isinstance(listed, str) or not listed:
        return asked is None
    listed = json.loads(listed)
    # Rows written before the image_backbone setting name its first variant.
    if 'shared_backbone' in listed:
        listed['image_backbone'] = 'shared' if listed.pop('shared_backbone') else 'own'
    defaults = _teacher_defaults()
    return defaults | listed == defaults | teacher | (asked or {})


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


def _train(
    dataset: InMemoryDataset,
    run: str,
    config: SplitConfig,
    steps: int,
    options: argparse.Namespace,
    run_dir: Path,
    weights: str,
    **budget: int,
) -> Row:
    """Train and test one run of ``RUNS`` for ``steps`` on the split ``config``.

    ``budget`` overrides settings of ``options`` (e.g. ``val_every``).
    """
    algorithm, run_teacher = RUNS[run]
    extra = {} if run_teacher is None else {'teacher': options.teacher | run_teacher}
    return train_and_test(
        dataset,
        algorithm,
        config.labels_per_class,
        config.seed,
        argparse.Namespace(**vars(options) | budget | {'steps': steps}),
        run_dir,
        split=config,
        name=run_dir.name,
        weights=weights,
        **extra,
    )


def _run(
    dataset: InMemoryDataset,
    key: Key,
    options: argparse.Namespace,
    weights: str,
    time_ratio: float | None = None,
) -> Row:
    split, labels, seed, run, steps = key
    trained_steps = steps
    if run in EQUAL_TIME.values():
        trained_steps = _equal_time_steps(steps, time_ratio)
    name = f'{steps}-steps-{split}-{labels}-labels-seed{seed}-{run}'.replace(', ', '-')
    run_dir = options.output / 'runs' / name.replace(' ', '-')
    config = SplitConfig(labels_per_class=labels, seed=seed, **SPLITS[split])
    row = _train(dataset, run, config, trained_steps, options, run_dir, weights)
    # The logs stay; the checkpoints (60 MB a run) are not needed once tested.
    shutil.rmtree(run_dir / 'checkpoints', ignore_errors=True)
    curve = pd.read_csv(options.output / row['curve'])
    return row | {
        'split': split,
        'run': run,
        'steps': steps,
        'trained_steps': trained_steps,
        'val_every': options.val_every,
        'teacher_settings': _teacher_settings(run, options.teacher),
        'pseudo_label_accuracy': _last_quarter(curve, 'train_pseudo_label_accuracy'),
        'mask_ratio': _last_quarter(curve, 'train_mask_ratio'),
    }


def _equal_time_steps(steps: int, time_ratio: float | None) -> int:
    """The plain run's steps that take as long as ``steps`` of its ST run."""
    if time_ratio is None:
        raise ValueError('an equal-time run needs the measured speed ratio')
    return int(round(steps * time_ratio / 10) * 10)


def _step_time(
    dataset: InMemoryDataset, run: str, options: argparse.Namespace, weights: str
) -> Row:
    """A run's median step (data, views, forward, backward, optimiser) in seconds.

    It trains ``SPEED_STEPS`` steps of the budget on the random split, 4 labels per
    class, seed 0, and keeps nothing else.
    """
    run_dir = options.output / 'speed' / f'speed-{run}'
    shutil.rmtree(run_dir, ignore_errors=True)
    config = SplitConfig(labels_per_class=4, seed=0, **SPLITS['random'])
    row = _train(
        dataset,
        run,
        config,
        SPEED_STEPS,
        options,
        run_dir,
        weights,
        val_every=SPEED_STEPS,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    (options.output / row['curve']).unlink()
    return {'run': run, 'median_step_seconds': row['median_step_seconds']}


def _time_ratio(options: argparse.Namespace, weights: str) -> float:
    """ST-FixMatch's seconds per step over FixMatch's, measured once on this machine.

    Kept in ``speed.json`` with the two median steps, so that every equal-time run
    of the table, in this session or a later one, uses the same ratio.

    Returns:
        The ratio.
    """
    path = options.output / 'speed.json'
    budget = {key: getattr(options, key) for key in BUDGET}
    if path.exists():
        speed = json.loads(path.read_text())
        if speed['budget'] == budget and speed['teacher'] == options.teacher:
            return speed['ratio']
    # Twice each, alternating, keeping the faster: other work on the machine only
    # ever slows a step down.
    runs = ('FixMatch', *TIMED) * SPEED_ROUNDS
    seconds: dict[str, float] = {}
    for row in finished(runs, _step_time, options, weights):
        run, median = row['run'], row['median_step_seconds']
        seconds[run] = min(seconds.get(run, median), median)
    ratios = {run: seconds[run] / seconds['FixMatch'] for run in TIMED}
    speed = {
        'median_step_seconds': seconds,
        'ratios': ratios,
        'ratio': ratios['ST-FixMatch'],
        'steps': SPEED_STEPS,
        'rounds': SPEED_ROUNDS,
        'threads': torch.get_num_threads(),
        'workers': options.workers,
        'budget': budget,
        'teacher': options.teacher,
    }
    path.write_text(json.dumps(speed, indent=2) + '\n')
    return speed['ratio']


def _spread(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return ''
    if len(values) == 1:
        return f'{values.iloc[0]:.1f}'
    return f'{values.mean():.1f} +- {values.std(ddof=1):.1f}'


def _table(runs: pd.DataFrame) -> list[dict[str, object]]:
    """Mean and spread over seeds of each split, label count, budget and run."""
    rows = []
    order = {name: i for i, name in enumerate(RUNS)}
    runs = runs.assign(order=runs['run'].map(order))
    for (split, labels, steps, _), group in runs.groupby(
        ['split', 'labels_per_class', 'steps', 'order'], sort=False
    ):
        teacher = group.get('teacher_test_error', pd.Series(dtype=float))
        rows.append(
            {
                'split': split,
                'labels / class': labels,
                'steps': steps,
                'run': group['run'].iloc[0],
                'trained steps': int(group['trained_steps'].median()),
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
        key=lambda r: (
            split_order[r['split']],
            r['labels / class'],
            r['steps'],
            order[r['run']],
        ),
    )


def _pairs(runs: pd.DataFrame) -> list[dict[str, object]]:
    """Per seed: each ST run's student error against a plain run's.

    At equal steps (``PAIRS``) and at equal time (``EQUAL_TIME``): the difference
    ST minus plain, and their ratio.
    """
    indexed = runs.set_index(['split', 'labels_per_class', 'seed', 'run', 'steps'])
    rows = []
    for (split, labels, seed, run, steps), row in indexed.iterrows():
        for compared, plain in (
            ('equal steps', PAIRS.get(run)),
            ('equal time', EQUAL_TIME.get(run)),
        ):
            if (
                plain is None
                or (split, labels, seed, plain, steps) not in indexed.index
            ):
                continue
            reference = indexed.loc[(split, labels, seed, plain, steps)]
            rows.append(
                {
                    'split': split,
                    'labels_per_class': labels,
                    'seed': seed,
                    'run': run,
                    'steps': steps,
                    'compared': compared,
                    'plain_steps': reference['trained_steps'],
                    'difference': row['test_error'] - reference['test_error'],
                    'ratio': row['test_error'] / reference['test_error'],
                    'teacher_minus_student': row.get('teacher_test_error', np.nan)
                    - row['test_error'],
                }
            )
    return rows


def _goals(pairs: pd.DataFrame) -> dict[str, object]:
    """The budget curve's goals, measured on the runs so far.

    ST-FixMatch's student error against FixMatch's: at most 0.9 times at equal time
    on random/4 and blocks/2, lower in every seed; at most 0.8 times at 4,000 equal
    steps on random/4; on the longitude split with 2 labels, at most 1 point worse
    at equal time. And whether ST minus plain shrinks or grows with the budget.
    """
    if pairs.empty:
        return {}
    fixmatch = pairs[pairs['run'] == 'ST-FixMatch']
    goals: dict[str, object] = {}
    for (split, labels, steps, compared), group in fixmatch.groupby(
        ['split', 'labels_per_class', 'steps', 'compared']
    ):
        measured = {
            'mean ratio ST / plain': group['ratio'].mean(),
            'mean difference (points)': group['difference'].mean(),
            'ST lower in every seed': bool((group['difference'] < 0).all()),
            'seeds': len(group),
        }
        if split == 'longitude' and compared == 'equal time':
            measured['goal'] = 'at most 1 point worse'
            measured['met'] = bool(group['difference'].mean() <= 1)
        elif compared == 'equal time':
            measured['goal'] = 'ratio <= 0.9, lower in every seed'
            measured['met'] = bool(
                group['ratio'].mean() <= 0.9 and (group['difference'] < 0).all()
            )
        elif (split, labels, steps) == ('random', 4, 4000):
            measured['goal'] = 'ratio <= 0.8'
            measured['met'] = bool(group['ratio'].mean() <= 0.8)
        goals[f'{split}/{labels}, {steps} steps, {compared}'] = measured
    return goals


def _curves(runs: pd.DataFrame, output: Path) -> None:
    """Pseudo-label accuracy and mask ratio over training: teacher's against plain."""
    settings = sorted(
        {(r.split, r.labels_per_class, r.steps) for r in runs.itertuples()},
        key=lambda s: (list(SPLITS).index(s[0]), s[1], s[2]),
    )
    if not settings:
        return
    figure = Figure(figsize=(11, 3.2 * len(settings)), layout='tight')
    axes = figure.subplots(len(settings), 2, squeeze=False)
    for row, (split, labels, steps) in enumerate(settings):
        chosen = runs[
            (runs['split'] == split)
            & (runs['labels_per_class'] == labels)
            & (runs['steps'] == steps)
            & runs['run'].isin([*PAIRS, *PAIRS.values()])
        ]
        for (column, title), axis in zip(CURVES.items(), axes[row], strict=True):
            for run, group in chosen.groupby('run', sort=False):
                curve = pd.concat(pd.read_csv(output / c) for c in group['curve'])
                curve = curve.dropna(subset=[column]).groupby('step')[column].mean()
                # Plain runs dashed, ST runs solid, a colour each.
                style = '-' if run in PAIRS else '--'
                colour = f'C{list(RUNS).index(run) % 10}'
                axis.plot(curve.index, curve.to_numpy(), style, color=colour, label=run)
            axis.set_title(f'{split}, {labels} labels/class, {steps} steps: {title}')
            axis.set_xlabel('step')
            axis.set_ylim(0, 1)
            axis.grid(alpha=0.3)
        axes[row][0].legend(fontsize='small')
    figure.savefig(output / 'curves.png', dpi=100)


def _report(
    runs: list[dict[str, object]], options: argparse.Namespace, time_ratio: float | None
) -> str:
    """Write ``summary.json`` and ``curves.png`` of the runs so far; the table."""
    frame = pd.DataFrame(runs)
    frame['trained_steps'] = frame.get('trained_steps', frame['steps']).fillna(
        frame['steps']
    )
    table = _table(frame)
    pairs = pd.DataFrame(_pairs(frame))
    summary = {
        'settings': {key: getattr(options, key) for key in BUDGET}
        | {'seeds': options.seeds, 'threads': torch.get_num_threads()},
        'time ratio ST-FixMatch / FixMatch': time_ratio,
        'table': table,
        'paired': pairs.to_dict(orient='records'),
        'goals': _goals(pairs),
    }
    path = options.output / 'summary.json'
    path.write_text(json.dumps(summary, indent=2, default=float) + '\n')
    _curves(frame, options.output)
    formats = {
        'split': '',
        'labels / class': '',
        'steps': '',
        'run': '',
        'trained steps': '',
        'seeds': '',
        'student error %': '',
        'teacher error % (metadata as input)': '',
        'pseudo-label accuracy': '.3f',
        'mask ratio': '.3f',
        'min / run': '.1f',
    }
    return markdown(table, formats)


def _planned(options: argparse.Namespace) -> list[Key]:
    """The runs asked for, budget by budget and seed by seed.

    A stopped table then holds every setting at the smaller budget first.
    """
    if options.curve:
        settings = [
            (split, labels, steps)
            for (split, labels), budgets in CURVE.items()
            for steps in budgets
            if split in options.splits and labels in options.labels_per_class
            if options.steps is None or steps in options.steps
        ]

        def runs_of(split: str, labels: int, steps: int) -> list[str]:
            return CURVE_RUNS + CURVE_LEVERS.get((split, labels, steps), [])

    else:
        settings = [
            (split, labels, steps)
            for split in options.splits
            for labels in options.labels_per_class
            for steps in options.steps or [PRETRAINED_BUDGET['steps']]
        ]
        equal_time = sorted(set(EQUAL_TIME.values())) if options.equal_time else []

        def runs_of(split: str, labels: int, steps: int) -> list[str]:
            return options.runs or SPLIT_RUNS[split] + equal_time

    return [
        (split, labels, seed, run, steps)
        for steps in sorted({s[2] for s in settings})
        for seed in options.seeds
        for split, labels, budget in settings
        if budget == steps
        for run in runs_of(split, labels, steps)
        if options.runs is None or run in options.runs
    ]


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
    parser.add_argument('--output', type=Path)
    parser.add_argument(
        '--steps',
        type=int,
        nargs='+',
        help="the budgets in steps (default: the curve's, else 1,000)",
    )
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--labels_per_class',
        type=int,
        nargs='+',
        default=[2, 4],
        help='labels per class (the curve: those of its settings that are listed)',
    )
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=list(SPLITS),
        default=list(SPLITS),
        help='the splits (the curve: those of its settings that are listed)',
    )
    parser.add_argument(
        '--runs',
        nargs='+',
        choices=list(RUNS),
        help="the runs of each split (default: the table's, or the curve's)",
    )
    parser.add_argument(
        '--equal_time',
        action='store_true',
        help='add, for each ST-FixMatch run, a FixMatch run at equal time',
    )
    parser.add_argument(
        '--curve',
        action='store_true',
        help='the budget curve (CURVE, CURVE_RUNS, equal time), into '
        'results/teacher_student_curve',
    )
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
    parser.set_defaults(**{k: v for k, v in PRETRAINED_BUDGET.items() if k != 'steps'})
    options = parser.parse_args()
    options.teacher = dict(options.teacher)
    options.output = options.output or RESULTS / (
        'teacher_student_curve' if options.curve else 'teacher_student'
    )
    if options.quick:
        options.steps, options.seeds, options.val_every = [60], [0], 30
        options.labels_per_class = [4]
        options.output = options.output / 'quick'  # a run folder: not kept
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    options.output.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    wanted = _planned(options)
    budget = {key: getattr(options, key) for key in BUDGET}
    # Every run of the listing made with this budget and teacher is in the report;
    # the listing keeps the others as they are.
    runs, others = [], []
    if listing.exists():
        for row in pd.read_csv(listing).to_dict(orient='records'):
            same = all(row.get(key) == value for key, value in budget.items())
            same &= _same_teacher(row, options.teacher)
            (runs if same else others).append(row)
    plan = [key for key in wanted if key not in {_key(r) for r in runs}]
    weights = str(lite0_weights(LITE0_WEIGHTS))
    equal_time = any(key[3] in EQUAL_TIME.values() for key in plan)
    time_ratio = _time_ratio(options, weights) if equal_time else None
    if time_ratio is None and (options.output / 'speed.json').exists():
        time_ratio = json.loads((options.output / 'speed.json').read_text())['ratio']
    rows = finished(plan, _run, options, weights, time_ratio)
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
        _report(runs, options, time_ratio)
    print(
        f'\nEuroSAT RGB with locations, {options.image_size} px, {options.backbone} '
        f'from ImageNet, B={options.batch_size}, mu={options.mu}, steps '
        f'{sorted({key[4] for key in wanted})}, seeds {options.seeds}'
        + ('' if time_ratio is None else f', time ratio ST/plain {time_ratio:.2f}')
    )
    print(_report(runs, options, time_ratio) if runs else 'no runs')


if __name__ == '__main__':
    main()
