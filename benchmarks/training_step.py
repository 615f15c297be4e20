"""Where a semi-supervised training step's time goes, for FixMatch and ST-FixMatch.

Real training through ``Trainer.fit`` on the real EuroSAT-MS sample (13 bands,
64 x 64 GeoTIFFs), a labelled batch of B and an unlabelled batch of mu x B per
step, on the device Lightning would pick; the tiles either read from their files
by DataLoader workers each step, or held in memory (``--data.in_memory true``).
Lightning's ``SimpleProfiler`` times the data wait, the views
(``on_after_batch_transfer``), the forward pass (``training_step``), the backward
pass and the optimiser step; hooks on the pseudo-label policy time the policy inside
the forward pass, and the EMA update is the ``WeightAveraging`` callback. The step
is the time from one step's start to the next's; "other" is what the parts leave of
it (logging, loops, hooks).

Prints a Markdown table (medians over the timed steps, after warm-up steps) and
writes ``results/training_step.csv`` and ``results/training_step.json``.

    .venv/bin/python benchmarks/training_step.py [--batch_size 16] [--mu 7]
"""

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.profilers import SimpleProfiler
from report import SHARED_DATA, markdown, save

from geossl.data.datamodule import SemiSupervisedDataModule
from geossl.data.datasets import GeoClassificationDataset, InMemoryDataset
from geossl.data.folder import ImageFolderDataset
from geossl.data.splits import SplitConfig
from geossl.tasks.semi_supervised import SemiSupervisedTask

RUNS = {'FixMatch': False, 'ST-FixMatch': True}


class StepClock(Callback):
    """Times each step from its start to the next step's start, and the policy."""

    def __init__(self) -> None:
        """Start with no steps."""
        self.starts: list[float] = []
        self.policy: list[float] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Note the step's start.

        Args:
            trainer: the Trainer.
            pl_module: the task.
            batch: the batch.
            batch_idx: its index.
        """
        self.starts.append(time.perf_counter())

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Time every call of the task's pseudo-label policy.

        Args:
            trainer: the Trainer.
            pl_module: the task.
        """
        started: list[float] = []
        pl_module.policy.register_forward_pre_hook(
            lambda *_: started.append(time.perf_counter())
        )
        pl_module.policy.register_forward_hook(
            lambda *_: self.policy.append(time.perf_counter() - started.pop())
        )

    @property
    def steps(self) -> list[float]:
        """Seconds of each complete step."""
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]


def _profile(
    dataset: GeoClassificationDataset,
    teacher_student: bool,
    options: argparse.Namespace,
    run_dir: Path,
) -> dict[str, float]:
    seed_everything(0)
    datamodule = SemiSupervisedDataModule(
        dataset,
        SplitConfig(labels_per_class=4, val_fraction=0.0, test_fraction=0.0),
        run_dir,
        options.batch_size,
        options.mu,
        num_workers=options.num_workers,
    )
    task = SemiSupervisedTask.for_dataset(
        dataset,
        'fixmatch',
        model=options.backbone,
        teacher_student=teacher_student,
        metadata='location',
    )
    clock = StepClock()
    profiler = SimpleProfiler()
    trainer = Trainer(
        max_steps=options.warmup + options.steps + 1,
        accelerator='auto',
        profiler=profiler,
        callbacks=[clock],
        logger=False,
        default_root_dir=run_dir,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule)
    strategy = type(trainer.strategy).__name__

    def durations(action: str, hook: str = '') -> list[float]:
        (key,) = [
            k
            for k in profiler.recorded_durations
            if k.startswith(action) and k.endswith(hook)
        ]
        # The last timed steps, after the warm-up.
        return profiler.recorded_durations[key][-options.steps :]

    forward = durations(f'[Strategy]{strategy}.training_step')
    backward = durations(f'[Strategy]{strategy}.backward')
    step_call = durations('[LightningModule]SemiSupervisedTask.optimizer_step')
    parts = {
        'data wait': durations('[_TrainingEpochLoop].train_dataloader_next'),
        'views': durations('[LightningModule]SemiSupervisedTask.on_after_batch'),
        'forward (without policy)': [
            f - p for f, p in zip(forward, clock.policy[-options.steps :], strict=True)
        ],
        'policy': clock.policy[-options.steps :],
        'backward': backward,
        'optimiser step': [
            s - f - b for s, f, b in zip(step_call, forward, backward, strict=True)
        ],
        'EMA update': durations('[Callback]WeightAveraging', 'on_train_batch_end'),
    }
    medians = {name: statistics.median(times) for name, times in parts.items()}
    total = statistics.median(clock.steps[-options.steps :])
    medians['other'] = max(0.0, total - sum(medians.values()))
    return medians | {'step': total}


def main() -> None:
    """Profile both runs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--mu', type=int, default=7)
    parser.add_argument('--backbone', default='resnet18')
    parser.add_argument('--num_workers', type=int, default=1)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    options = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    files = ImageFolderDataset(SHARED_DATA / 'eurosat-ms-sample', progress=False)
    datasets = {'files': files, 'in memory': InMemoryDataset(files, progress=False)}
    columns = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, teacher_student in RUNS.items():
            for data, dataset in datasets.items():
                columns[f'{name}, {data}'] = _profile(
                    dataset, teacher_student, options, Path(scratch) / name / data
                )
    for medians in columns.values():
        learning = medians['forward (without policy)'] + medians['backward']
        medians['all but forward + backward'] = medians['step'] - learning
    rows = [
        {'part': part}
        | {
            column: f'{1e3 * medians[part]:.1f} ms '
            f'({medians[part] / medians["step"]:.0%})'
            for column, medians in columns.items()
        }
        for part in next(iter(columns.values()))
    ]
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    settings = vars(options) | {'device': device, 'image': '13 x 64 x 64'}
    save('training_step', [{'run': c} | m for c, m in columns.items()], settings)
    print(
        f'{options.backbone}, B={options.batch_size}, mu={options.mu}, 13 x 64 x 64 '
        f'EuroSAT-MS tiles, {options.num_workers} DataLoader worker(s), {device}, '
        f'{torch.get_num_threads()} threads; median of {options.steps} steps'
    )
    print(markdown(rows, dict.fromkeys(['part', *columns], '')))


if __name__ == '__main__':
    main()
