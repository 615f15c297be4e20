"""Supervised vs FixMatch/FreeMatch vs their spatiotemporal teacher-student versions.

Every run uses the same seed, split and step budget on the real EuroSAT-MS sample
(13 bands, 64 x 64, locations from the GeoTIFFs; EuroSAT has no dates, so the
teacher sees location only). Prints two Markdown tables:

1. a random split: test accuracy of the (EMA) student, and the pseudo-label accuracy
   and mask ratio averaged over each quarter of training;
2. a spatial-shift split (50 km blocks: test tiles come from blocks never trained
   on): test accuracy of the teacher (with metadata) and of the student.

    .venv/bin/python benchmarks/teacher_student.py [--steps 300] [--seed 0]
"""

import argparse
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

from geossl.data.datamodule import SemiSupervisedDataModule
from geossl.data.datasets import ImageFolderDataset
from geossl.data.splits import SplitConfig
from geossl.tasks.semi_supervised import SemiSupervisedTask

DATA = Path(__file__).parents[1] / '..' / 'shared' / 'data' / 'eurosat-ms-sample'

RUNS = {
    'supervised': ('supervised', False),
    'FixMatch': ('fixmatch', False),
    'ST-FixMatch': ('fixmatch', True),
    'FreeMatch': ('freematch', False),
    'ST-FreeMatch': ('freematch', True),
}


def _train(
    dataset: ImageFolderDataset,
    split: SplitConfig,
    algorithm: str,
    teacher_student: bool,
    options: argparse.Namespace,
    run_dir: Path,
) -> tuple[SemiSupervisedTask, SemiSupervisedDataModule, pd.DataFrame]:
    seed_everything(options.seed)
    datamodule = SemiSupervisedDataModule(
        dataset, split, run_dir, options.batch_size, options.mu, seed=options.seed
    )
    task = SemiSupervisedTask(
        num_classes=len(dataset.classes),
        in_channels=len(dataset.band_names),
        algorithm=algorithm,
        num_samples=len(dataset),
        class_names=dataset.classes,
        teacher_student=teacher_student,
        metadata='location',
        ema_decay=0.99,
    )
    trainer = Trainer(
        max_steps=options.steps,
        accelerator='auto',
        logger=CSVLogger(run_dir, name='logs'),
        log_every_n_steps=1,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule)
    log = pd.read_csv(Path(trainer.logger.log_dir) / 'metrics.csv')
    return task, datamodule, log


@torch.no_grad()
def _test_accuracy(
    task: SemiSupervisedTask, datamodule: SemiSupervisedDataModule, teacher: bool
) -> float:
    task.eval()
    correct = total = 0
    for batch in datamodule.test_dataloader():
        images = task.views.normalise(batch['image'].to(task.device))
        if teacher:
            meta = batch['meta'].to(task.device)
            mask = batch['meta_mask'].to(task.device)
            logits = task.teacher(images, meta, mask)[0]
        else:
            logits = task(images)
        correct += int((logits.argmax(dim=1).cpu() == batch['label']).sum())
        total += len(batch['label'])
    return correct / total


def _quarters(log: pd.DataFrame, column: str) -> str:
    if column not in log:
        return '-'
    values = log[column].dropna().to_numpy()
    return ' / '.join(f'{part.mean():.2f}' for part in np.array_split(values, 4))


def main() -> None:
    """Train every run on both splits and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--mu', type=int, default=3)
    parser.add_argument('--labels_per_class', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    options = parser.parse_args()
    # Keep the output to the tables: Lightning's notices and warnings go.
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    dataset = ImageFolderDataset(DATA, progress=False)
    random_split = SplitConfig(
        labels_per_class=options.labels_per_class,
        val_fraction=0.0,
        test_fraction=0.3,
        seed=options.seed,
    )
    spatial_split = SplitConfig(
        labels_per_class=options.labels_per_class,
        val_fraction=0.0,
        test_fraction=0.3,
        strategy='spatial',
        block_size_km=50,
        seed=options.seed,
    )
    header = (
        f'EuroSAT-MS sample ({len(dataset)} tiles), {options.labels_per_class} labels '
        f'per class, B={options.batch_size}, mu={options.mu}, {options.steps} steps, '
        f'seed {options.seed}'
    )
    with tempfile.TemporaryDirectory() as scratch:
        print(f'{header}, random split')
        print('| run | student test accuracy | pseudo-label accuracy | mask ratio |')
        print('|---|---|---|---|')
        for name, (algorithm, teacher_student) in RUNS.items():
            task, datamodule, log = _train(
                dataset,
                random_split,
                algorithm,
                teacher_student,
                options,
                Path(scratch) / 'random' / name,
            )
            accuracy = _test_accuracy(task, datamodule, teacher=False)
            print(
                f'| {name} | {accuracy:.3f} | '
                f'{_quarters(log, "train/pseudo_label_accuracy")} | '
                f'{_quarters(log, "train/mask_ratio")} |'
            )
        print(f'\n{header}, spatial-shift split (50 km blocks)')
        print('| run | teacher (with location) | student (image only) |')
        print('|---|---|---|')
        for name, (algorithm, teacher_student) in RUNS.items():
            if not teacher_student:
                continue
            task, datamodule, _ = _train(
                dataset,
                spatial_split,
                algorithm,
                teacher_student,
                options,
                Path(scratch) / 'spatial' / name,
            )
            teacher = _test_accuracy(task, datamodule, teacher=True)
            student = _test_accuracy(task, datamodule, teacher=False)
            print(f'| {name} | {teacher:.3f} | {student:.3f} |')


if __name__ == '__main__':
    main()
