"""SimCLR pretraining on EuroSAT RGB: its representation, and FixMatch started from it.

On the real 27,000 EuroSAT RGB tiles at 4 labels per class, with the splits and
model of ``label_efficiency.py`` (32 x 32 tiles in memory, timm's ``test_resnet``):

1. ``geossl pretrain``'s SimCLR on every training tile (labelled and unlabelled
   alike; validation and test tiles unseen), with geossl's multispectral
   contrastive view, SimCLR's learning rate for the batch and no memory bank;
2. the representation on the test split, frozen: weighted kNN (cosine, k=200,
   temperature 0.1) and a logistic-regression linear probe, fitted on the 40
   labelled tiles and, as the SSL literature reports, on all training tiles with
   their labels; the same untrained (random) backbone is the reference;
3. Supervised and FixMatch from scratch for ``--steps`` steps against the same
   started from the SimCLR backbone (``--model.weights``) for
   ``--finetune_steps``, chosen so that pretraining plus fine-tuning take about the
   wall time of the run from scratch (the table shows each side's minutes).

Prints the tables and writes ``runs.csv``, ``representation.csv`` and
``summary.json`` into ``--output``, with each run's folder.

    .venv/bin/python benchmarks/pretraining.py --quick   # 1 seed, short budgets
    .venv/bin/python benchmarks/pretraining.py           # 3 seeds
"""

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from label_efficiency import add_run_arguments, split_config, train_and_test
from lightning import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from report import RESULTS, SHARED_DATA, eurosat_rgb, markdown
from tqdm import tqdm

from geossl.data.datamodule import PretrainingDataModule
from geossl.data.datasets import InMemoryDataset
from geossl.inference.representation import embed_samples, score_representation
from geossl.tasks.pretrain import SimCLR


def _pretrain(
    dataset: InMemoryDataset, seed: int, options: argparse.Namespace, run_dir: Path
) -> tuple[SimCLR, PretrainingDataModule, float]:
    seed_everything(seed)
    datamodule = PretrainingDataModule(
        dataset, split_config(4, seed), run_dir, options.pretrain_batch_size, seed=seed
    )
    task = SimCLR(
        model=options.backbone,
        in_channels=len(dataset.band_names),
        chip_size=options.image_size,
        band_names=dataset.band_names,
        lr=0.3 * options.pretrain_batch_size / 256,
        memory_bank_size=options.memory_bank_size,
    )
    checkpoint = ModelCheckpoint(dirpath=run_dir / 'checkpoints', save_last=True)
    trainer = Trainer(
        max_epochs=options.pretrain_epochs,
        accelerator='auto',
        default_root_dir=run_dir,
        logger=False,
        limit_val_batches=0,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(task, datamodule)
    minutes = (time.perf_counter() - start) / 60
    return task.eval(), datamodule, minutes


def _representation(
    task: SimCLR, datamodule: PretrainingDataModule, name: str
) -> list[dict[str, object]]:
    dataset = datamodule.dataset
    targets = torch.as_tensor(dataset.targets)
    positions = datamodule.positions
    train = np.union1d(positions['labelled'], positions['unlabelled'])
    train_features, test_features = (
        embed_samples(task, dataset, chosen, description=f'{name} {split}')['features']
        for split, chosen in (('train', train), ('test', positions['test']))
    )
    # The labelled tiles are among the training tiles: their features are too.
    banks = {'labelled': positions['labelled'], 'train': train}
    rows = []
    for bank, chosen in banks.items():
        scores = score_representation(
            train_features[np.searchsorted(train, chosen)],
            targets[chosen],
            test_features,
            targets[positions['test']],
            len(dataset.classes),
        )
        rows.append(
            {'backbone': name, 'fitted_on': bank, 'fitted_tiles': len(chosen)}
            | {metric: 100 * value for metric, value in scores.items()}
        )
    return rows


def main() -> None:
    """Pretrain, evaluate the representation, fine-tune; print and write tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=SHARED_DATA / 'eurosat-rgb')
    parser.add_argument('--output', type=Path, default=RESULTS / 'pretraining')
    parser.add_argument('--quick', action='store_true', help='1 seed, short budgets')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--pretrain_epochs', type=int, default=8)
    parser.add_argument('--pretrain_batch_size', type=int, default=256)
    # A few epochs are too short for a bank of stale negatives: with 4,096, the
    # loss had barely fallen after 4 epochs, and the features were worse.
    parser.add_argument('--memory_bank_size', type=int, default=0)
    parser.add_argument('--steps', type=int, default=2000)
    parser.add_argument('--finetune_steps', type=int, default=1000)
    parser.add_argument('--algorithms', nargs='+', default=['supervised', 'fixmatch'])
    add_run_arguments(parser)
    options = parser.parse_args()
    if options.quick:
        options.seeds, options.pretrain_epochs = [0], 2
        options.steps, options.finetune_steps, options.val_every = 400, 200, 100
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    dataset = eurosat_rgb(options.data, options.image_size)
    options.output.mkdir(parents=True, exist_ok=True)
    runs, representation = [], []
    for seed in tqdm(options.seeds, desc='Seeds', unit='seed'):
        seed_dir = options.output / f'seed{seed}'
        task, datamodule, minutes = _pretrain(
            dataset, seed, options, seed_dir / 'simclr'
        )
        tqdm.write(f'seed {seed}: SimCLR pretraining {minutes:.1f} min')
        seed_everything(seed)
        untrained = SimCLR(
            model=options.backbone,
            in_channels=len(dataset.band_names),
            chip_size=options.image_size,
        ).eval()
        untrained.views.set_statistics(datamodule.mean, datamodule.std)
        for name, model in (('SimCLR', task), ('random init', untrained)):
            for row in _representation(model, datamodule, name):
                representation.append(row | {'seed': seed})
        weights = str(seed_dir / 'simclr' / 'checkpoints' / 'last.ckpt')
        for algorithm in options.algorithms:
            for start, steps, extra in (
                ('scratch', options.steps, {}),
                ('SimCLR', options.finetune_steps, {'weights': weights}),
            ):
                budget = argparse.Namespace(**(vars(options) | {'steps': steps}))
                budget.output = seed_dir
                run = train_and_test(
                    dataset,
                    algorithm,
                    4,
                    seed,
                    budget,
                    seed_dir / f'{algorithm}-{start}',
                    **extra,
                )
                pretrain = minutes if start == 'SimCLR' else 0.0
                runs.append(
                    run
                    | {
                        'start': start,
                        'pretrain_minutes': pretrain,
                        'total_minutes': pretrain + run['train_minutes'],
                    }
                )
                tqdm.write(
                    f'seed {seed}, {algorithm} from {start}: test error '
                    f'{run["test_error"]:.1f} %, {runs[-1]["total_minutes"]:.1f} min'
                )
        pd.DataFrame(runs).to_csv(options.output / 'runs.csv', index=False)
        pd.DataFrame(representation).to_csv(
            options.output / 'representation.csv', index=False
        )
    runs_table = pd.DataFrame(runs)
    runs_summary = (
        runs_table.groupby(['algorithm', 'start', 'steps'], sort=False)
        .agg(
            error_mean=('test_error', 'mean'),
            error_std=('test_error', 'std'),
            minutes=('total_minutes', 'median'),
            seeds=('seed', 'count'),
        )
        .reset_index()
    )
    representation_summary = (
        pd.DataFrame(representation)
        .groupby(['backbone', 'fitted_on', 'fitted_tiles'], sort=False)
        .agg(['mean', 'std'])
        .drop(columns='seed')
    )
    representation_summary.columns = [
        '_'.join(column) for column in representation_summary.columns
    ]
    representation_summary = representation_summary.reset_index()
    settings = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(options).items()
    }
    settings['threads'] = torch.get_num_threads()
    summary = {
        'settings': settings,
        'fine_tuning': runs_summary.to_dict(orient='records'),
        'representation': representation_summary.to_dict(orient='records'),
    }
    (options.output / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(
        f'\nEuroSAT RGB, 4 labels per class, {options.image_size} x '
        f'{options.image_size}, {options.backbone}, seeds {options.seeds}; SimCLR '
        f'{options.pretrain_epochs} epochs at batch {options.pretrain_batch_size}'
    )
    print('\nFrozen representation on the test split (%, mean +- std over seeds):')
    print(
        markdown(
            [
                {
                    'backbone': row.backbone,
                    'fitted on': f'{row.fitted_on} ({row.fitted_tiles} tiles)',
                }
                | {
                    metric.replace('_', ' '): _mean_std(
                        getattr(row, f'{metric}_mean'), getattr(row, f'{metric}_std')
                    )
                    for metric in ('knn_top1', 'knn_top5', 'linear_top1', 'linear_top5')
                }
                for row in representation_summary.itertuples()
            ],
            dict.fromkeys(
                [
                    'backbone',
                    'fitted on',
                    'knn top1',
                    'knn top5',
                    'linear top1',
                    'linear top5',
                ],
                '',
            ),
        )
    )
    print('\nTest error after training (%, mean +- std over seeds):')
    print(
        markdown(
            [
                {
                    'algorithm': row.algorithm,
                    'start': row.start,
                    'steps': row.steps,
                    'error %': _mean_std(row.error_mean, row.error_std),
                    'minutes (incl. pretraining)': row.minutes,
                }
                for row in runs_summary.itertuples()
            ],
            {
                'algorithm': '',
                'start': '',
                'steps': '',
                'error %': '',
                'minutes (incl. pretraining)': '.1f',
            },
        )
    )


def _mean_std(mean: float, std: float) -> str:
    return f'{mean:.1f}' + ('' if np.isnan(std) else f' +- {std:.1f}')


if __name__ == '__main__':
    main()
