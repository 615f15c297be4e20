"""Does the weights' layout change what training reaches? Paired runs, both layouts.

The label-efficiency table's FixMatch run (ImageNet Lite0, its budget, 4 labels per
class, the split of seed 0) trained with the weights channels-last (what
``memory_format=auto`` picks on the CPU) and channels-first, once per training
seed: the two runs of a seed differ only in floating-point rounding. Each finished
run is appended to ``results/layout_accuracy.csv`` (``--output`` elsewhere), so a
stopped benchmark goes on where it was; the table pairs the seeds.

    .venv/bin/python benchmarks/layout_accuracy.py --seeds 0 1 2 3 4 5 6 7
"""

import argparse
import statistics
from pathlib import Path

import pandas as pd
from label_efficiency import (
    PRETRAINED_BUDGET,
    add_data_argument,
    split_config,
    train_and_test,
)
from report import RESULTS, eurosat_rgb, markdown
from weights.lite0_to_timm import LITE0_WEIGHTS, lite0_weights

from geossl.data.datasets import InMemoryDataset

#: The task's ``memory_format`` of each column.
LAYOUTS = ('channels_last', 'contiguous')


def main() -> None:
    """Run the missing (seed, layout) pairs; print the paired table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--output', type=Path, default=RESULTS)
    options = parser.parse_args()
    budget = argparse.Namespace(
        **PRETRAINED_BUDGET, image_size=32, val_every=200, log_every=25
    )
    budget.output = options.output / 'layout_accuracy'
    listing = options.output / 'layout_accuracy.csv'
    runs = pd.read_csv(listing) if listing.exists() else pd.DataFrame()
    done = set(zip(runs.get('seed', []), runs.get('layout', []), strict=True))
    weights = str(lite0_weights(LITE0_WEIGHTS))
    dataset: InMemoryDataset | None = None
    for seed in options.seeds:
        for layout in LAYOUTS:
            if (seed, layout) in done:
                continue
            dataset = dataset or eurosat_rgb(options.data, 32)
            row = train_and_test(
                dataset,
                'fixmatch',
                4,
                seed,
                budget,
                budget.output / f'{layout}-{seed}',
                split=split_config(4, 0),
                name=f'{layout}-{seed}',
                weights=weights,
                memory_format=layout,
            )
            run = {'seed': seed, 'layout': layout} | {
                key: row[key] for key in ('test_error', 'best_step', 'train_minutes')
            }
            runs = pd.concat([runs, pd.DataFrame([run])], ignore_index=True)
            runs.to_csv(listing, index=False)
            print(f'seed {seed}, {layout}: test error {run["test_error"]:.1f} %')
    paired = runs.pivot(index='seed', columns='layout', values='test_error')
    paired = paired.loc[paired.index.isin(options.seeds)].dropna()
    paired['last - first'] = paired['channels_last'] - paired['contiguous']
    rows = [{'seed': seed} | dict(row) for seed, row in paired.iterrows()]
    print(markdown(rows, {'seed': '', **dict.fromkeys(paired.columns, '.1f')}))
    differences = paired['last - first']
    if len(differences) > 1:
        print(
            f'mean difference {differences.mean():+.2f} points, standard error '
            f'{statistics.stdev(differences) / len(differences) ** 0.5:.2f}; '
            f'channels-last worse in {(differences > 0).sum()} of {len(differences)}'
        )
    minutes = runs.groupby('layout')['train_minutes'].mean()
    print('mean minutes: ' + ', '.join(f'{k} {v:.1f}' for k, v in minutes.items()))


if __name__ == '__main__':
    main()
