"""USB, side by side: geossl and USB's own code on one split, network and budget.

USB (Wang et al., NeurIPS 2022; PyPI ``semilearn`` 0.3.2) is the implementation
most of the field reports with. This runs it as a peer of geossl on what
``label_efficiency.py --pretrained`` runs: EuroSAT RGB at 32 x 32, the same split
file (20 % test never seen, 5 % validation for model selection), timm's
``tf_efficientnet_lite0`` from the same ImageNet weights with a linear head, AdamW at
3e-4 with FixMatch's cosine, B=8, mu=2, 1,000 steps, validation every 200 steps, the
same thread count, tiles in memory and no loader workers for both.

What stays each implementation's own: its algorithm code, its augmentations
(geossl's batched Kornia views; USB's per-sample PIL transforms and RandAugment(3, 5)
with its EuroSAT normalisation of 0.5), its sampler, and its EMA of the weights.
The EMAs differ in kind: geossl's warms up (``min(0.999, (1 + n) / (10 + n))``) and
averages batch-norm statistics; USB's starts at 0.999 from the initial weights (the
ImageNet backbone and a random head), so after 1,000 steps 37 % of its weights are
still the initial ones. Both are therefore run twice: with their EMA as shipped,
and without (geossl ``ema_decay=None``, USB ``ema_m=0``), which compares the
algorithms on equal terms.

USB runs in its own virtual environment (``.venv-usb``, made on first use from
``usb/requirements.txt``, semilearn without its audio, text and logger
dependencies; torch and timm shared with geossl's environment): ``usb/train.py``.

Prints the table and writes ``results/peer_usb/runs.csv`` (one row per run, written
as each finishes, so a stopped benchmark goes on where it was), ``summary.json``,
and each run's folder under ``runs/``. A stopped run starts over, in both
implementations, so that its time per step is a whole run's.

    .venv/bin/python benchmarks/peer_usb.py             # 4 labels/class, seed 0
    .venv/bin/python benchmarks/peer_usb.py --labels_per_class 2 --seed 1
"""

import argparse
import json
import logging
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from label_efficiency import (
    PRETRAINED_BUDGET,
    add_run_arguments,
    algorithm_options,
    split_config,
    train_and_test,
)
from report import RESULTS, SHARED_DATA, eurosat_rgb, markdown
from tqdm import tqdm
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

from geossl.data.datasets import InMemoryDataset
from geossl.data.splits import load_or_make_splits
from geossl.tasks.recipes import Recipe

HERE = Path(__file__).parent
USB_VENV = HERE.parent / '.venv-usb'
USB_VERSION = 'semilearn==0.3.2'

#: The algorithms both implementations run, in table order.
ALGORITHMS = ('supervised', 'fixmatch', 'freematch', 'flexmatch')

#: geossl's option names -> USB's, for the options a short budget scales
#: (:func:`label_efficiency.algorithm_options`): both run the same settings.
USB_OPTION_NAMES = {'ema': 'ema_p', 'warmup': 'thresh_warmup'}

#: EMA settings: name -> (geossl's ema_decay, USB's ema_m).
EMA = {'shipped': (0.999, 0.999), 'none': (None, 0.0)}
IMPLEMENTATIONS = ('geossl', 'usb')


def usb_python(venv: Path = USB_VENV) -> Path:
    """The Python of USB's environment, made and installed on first use.

    Args:
        venv: the environment's folder.

    Returns:
        Its interpreter.
    """
    python = venv / 'bin' / 'python'
    installed = venv / '.installed'
    if installed.exists():
        return python
    tqdm.write(f'Making USB environment {venv} ({USB_VERSION})')
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    # torch, torchvision, timm and scikit-learn come from geossl's environment.
    site = subprocess.run(
        [
            str(python),
            '-c',
            'import sysconfig; print(sysconfig.get_paths()["purelib"])',
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / 'geossl-environment.pth').write_text(
        sysconfig.get_paths()['purelib'] + '\n'
    )
    pip = [str(python), '-m', 'pip', 'install', '--quiet']
    subprocess.run([*pip, '--no-deps', USB_VERSION], check=True)
    subprocess.run([*pip, '-r', str(HERE / 'usb' / 'requirements.txt')], check=True)
    installed.touch()
    return python


def write_tiles(dataset: InMemoryDataset, splits: pd.DataFrame, path: Path) -> None:
    """The tiles, labels and split names for USB, as one compressed array file.

    Args:
        dataset: EuroSAT RGB in memory (uint8).
        splits: the split, in dataset order.
        path: the ``.npz`` to write.
    """
    images = torch.stack(dataset.images).permute(0, 2, 3, 1).contiguous()
    np.savez_compressed(
        path,
        images=images.numpy().astype(np.uint8),
        labels=np.asarray(dataset.targets, dtype=np.int64),
        split=splits['split'].to_numpy().astype(str),
    )


def run_usb(
    algorithm: str, ema: float, tiles: Path, run_dir: Path, options: argparse.Namespace
) -> dict[str, object]:
    """Train and test one USB run in its environment.

    Args:
        algorithm: ``supervised`` or a USB algorithm name.
        ema: USB's ``ema_m``.
        tiles: the tiles file of :func:`write_tiles`.
        run_dir: the run's folder.
        options: the budget.

    Returns:
        The run's result.
    """
    shutil.rmtree(run_dir, ignore_errors=True)  # USB does not resume
    run_dir.mkdir(parents=True)
    command = [
        str(usb_python()),
        str(HERE / 'usb' / 'train.py'),
        f'--tiles={tiles}',
        f'--weights={lite0_weights(LITE0_WEIGHTS)}',
        f'--output={run_dir}',
        f'--algorithm={algorithm}',
        f'--model={options.backbone}',
        f'--steps={options.steps}',
        f'--batch_size={options.batch_size}',
        f'--mu={options.mu}',
        f'--ema={ema}',
        f'--val_every={options.val_every}',
        f'--log_every={options.log_every}',
        f'--seed={options.seed}',
        f'--threads={torch.get_num_threads()}',
        '--usb_options=' + json.dumps(usb_options(algorithm, options.steps)),
    ]
    with (run_dir / 'usb.log').open('w') as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return json.loads((run_dir / 'result.json').read_text())


def usb_options(algorithm: str, steps: int) -> dict[str, object]:
    """geossl's short-budget options of an algorithm, by USB's names.

    Args:
        algorithm: ``supervised`` or a policy name.
        steps: the run's training steps.

    Returns:
        USB's arguments that set the same (FreeMatch's ``ema_p``, FlexMatch's
        ``thresh_warmup``).
    """
    options = algorithm_options(algorithm, steps)
    return {USB_OPTION_NAMES[name]: value for name, value in options.items()}


def run_geossl(
    dataset: InMemoryDataset,
    algorithm: str,
    ema: float | None,
    split_file: Path,
    run_dir: Path,
    options: argparse.Namespace,
) -> dict[str, object]:
    """Train and test one geossl run on the split file.

    Args:
        dataset: the tiles.
        algorithm: ``supervised`` or a policy name.
        ema: the recipe's ``ema_decay``.
        split_file: the split both implementations read.
        run_dir: the run's folder.
        options: the budget.

    Returns:
        The run's result.
    """
    shutil.rmtree(run_dir, ignore_errors=True)  # a whole run, timed as USB's
    run_dir.mkdir(parents=True)
    shutil.copyfile(split_file, run_dir / 'splits.csv')
    # The run's curve goes into its own folder: both EMA settings share its name.
    budget = argparse.Namespace(**vars(options) | {'output': run_dir})
    row = train_and_test(
        dataset,
        algorithm,
        options.labels_per_class,
        options.seed,
        budget,
        run_dir,
        weights=str(lite0_weights(LITE0_WEIGHTS)),
        recipe=Recipe(ema_decay=ema),
    )
    return row | {'seconds_per_step': 60 * row['train_minutes'] / options.steps}


def _table(runs: pd.DataFrame) -> list[dict[str, object]]:
    rows = []
    for run in runs.itertuples():
        supervised = runs[
            (runs['implementation'] == run.implementation)
            & (runs['ema'] == run.ema)
            & (runs['algorithm'] == 'supervised')
        ]['test_error']
        ratio = run.test_error / supervised.iloc[0] if len(supervised) else None
        rows.append(
            {
                'implementation': run.implementation,
                'algorithm': run.algorithm,
                'EMA': run.ema,
                'test error %': run.test_error,
                'ratio to supervised': None if run.algorithm == 'supervised' else ratio,
                'best step': run.best_step,
                's / step': run.seconds_per_step,
                # Runs listed before the compute report kept it have none.
                'median step s': getattr(run, 'median_step_seconds', None),
                'threads': int(run.threads),
            }
        )
    return rows


def main() -> None:
    """Run both implementations for every algorithm and EMA setting; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=SHARED_DATA / 'eurosat-rgb')
    parser.add_argument('--output', type=Path, default=RESULTS / 'peer_usb')
    parser.add_argument('--labels_per_class', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--algorithms',
        nargs='+',
        choices=ALGORITHMS,
        default=['supervised', 'fixmatch'],
    )
    parser.add_argument('--ema', nargs='+', choices=list(EMA), default=list(EMA))
    parser.add_argument(
        '--implementations', nargs='+', choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS
    )
    parser.add_argument('--steps', type=int, default=PRETRAINED_BUDGET['steps'])
    add_run_arguments(parser)
    parser.set_defaults(**PRETRAINED_BUDGET)
    options = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    options.output.mkdir(parents=True, exist_ok=True)
    setting = f'{options.labels_per_class}-labels-seed{options.seed}'
    work = options.output / 'runs' / f'{options.steps}-steps' / setting
    work.mkdir(parents=True, exist_ok=True)
    listing = options.output / 'runs.csv'
    earlier = pd.read_csv(listing).to_dict('records') if listing.exists() else []
    key_columns = ('implementation', 'algorithm', 'ema', 'labels_per_class', 'seed')
    budget = {key: getattr(options, key) for key in ('steps', 'batch_size', 'mu')}

    def key(run: dict[str, object]) -> tuple[object, ...]:
        return tuple(run[c] for c in key_columns) + tuple(run[c] for c in budget)

    done = {key(run) for run in earlier}
    plan = [
        {
            'implementation': implementation,
            'algorithm': algorithm,
            'ema': ema,
            'labels_per_class': options.labels_per_class,
            'seed': options.seed,
        }
        | budget
        for ema in options.ema
        for algorithm in options.algorithms
        for implementation in options.implementations
    ]
    runs = list(earlier)
    todo = [run for run in plan if key(run) not in done]
    split_file, tiles = work / 'splits.csv', work / 'tiles.npz'
    if todo:
        dataset = eurosat_rgb(options.data, options.image_size)
        config = split_config(options.labels_per_class, options.seed)
        splits = load_or_make_splits(dataset, config, split_file)
        if not tiles.exists():
            write_tiles(dataset, splits, tiles)
    for run in tqdm(todo, desc='Runs', unit='run'):
        run_dir = work / f'{run["implementation"]}-{run["algorithm"]}-ema-{run["ema"]}'
        geossl_ema, usb_ema = EMA[run['ema']]
        if run['implementation'] == 'usb':
            result = run_usb(run['algorithm'], usb_ema, tiles, run_dir, options)
        else:
            result = run_geossl(
                dataset, run['algorithm'], geossl_ema, split_file, run_dir, options
            )
        run |= {
            column: result[column]
            for column in ('test_error', 'val_accuracy', 'best_step', 'train_minutes')
        } | {
            'seconds_per_step': result['seconds_per_step'],
            'median_step_seconds': result.get('median_step_seconds'),
            'threads': torch.get_num_threads(),
            'options': json.dumps(
                algorithm_options(run['algorithm'], options.steps), sort_keys=True
            ),
        }
        tqdm.write(
            f'{run["implementation"]} {run["algorithm"]} (EMA {run["ema"]}): test '
            f'error {run["test_error"]:.1f} %, {run["seconds_per_step"]:.2f} s/step'
        )
        runs.append(run)
        pd.DataFrame(runs).to_csv(listing, index=False)
    # Every run of this setting and budget so far, in table order.
    setting_columns = {
        'labels_per_class': options.labels_per_class,
        'seed': options.seed,
    }
    chosen = [
        run
        for run in runs
        if all(run[c] == v for c, v in (setting_columns | budget).items())
    ]

    def order(run: dict[str, object]) -> tuple[int, int, int]:
        return (
            list(EMA).index(run['ema']),
            ALGORITHMS.index(run['algorithm']),
            IMPLEMENTATIONS.index(run['implementation']),
        )

    table = _table(pd.DataFrame(sorted(chosen, key=order)))
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()
    }
    summary = {'settings': settings | {'threads': torch.get_num_threads()}}
    (options.output / 'summary.json').write_text(
        json.dumps(summary | {'table': table}, indent=2) + '\n'
    )
    print(
        f'\nEuroSAT RGB, {options.labels_per_class} labels/class, seed {options.seed}, '
        f'{options.backbone} from ImageNet, B={options.batch_size}, mu={options.mu}, '
        f'{options.steps} steps, {torch.get_num_threads()} threads'
    )
    formats = {'implementation': '', 'algorithm': '', 'EMA': ''}
    print(
        markdown(
            table,
            formats
            | {
                'test error %': '.1f',
                'ratio to supervised': '.2f',
                'best step': '',
                's / step': '.2f',
                'median step s': '.3f',
                'threads': '',
            },
        )
    )


if __name__ == '__main__':
    main()
