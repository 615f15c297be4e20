"""Time one semi-supervised training step, split into data, views and forward/backward.

Real 13-band chips cut from the 18SVG scene (64 x 64 at 10 m), a labelled batch of B
and an unlabelled batch of mu x B, on the device Lightning would pick. Prints a
Markdown table (median over the timed steps, after warm-up steps).

    .venv/bin/python benchmarks/training_step.py [--batch_size 16] [--mu 7]
"""

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from geossl.data.datamodule import collate_samples
from geossl.data.scene import SceneDataset
from geossl.tasks.semi_supervised import SemiSupervisedTask

SCENE = (
    Path(__file__).parents[1]
    / '..'
    / 'shared'
    / 'data'
    / ('sentinel2-scene-18SVG-20160112')
)


def _timed(
    function: Callable[[], object], device: torch.device
) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--mu', type=int, default=7)
    parser.add_argument('--algorithm', default='fixmatch')
    parser.add_argument('--backbone', default='resnet18')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    options = parser.parse_args()
    # The task runs outside a Trainer here, so its self.log calls have nowhere to go.
    warnings.filterwarnings('ignore', message='You are trying to `self.log()`')
    torch.manual_seed(0)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    chips = SceneDataset(SCENE, chip_size=64)
    task = SemiSupervisedTask(
        num_classes=6,
        in_channels=13,
        algorithm=options.algorithm,
        num_samples=len(chips),
        backbone=options.backbone,
    ).to(device)
    task.views.set_statistics(torch.full((13,), 1000.0), torch.full((13,), 500.0))
    optimiser = torch.optim.SGD(task.parameters(), lr=0.03, momentum=0.9)
    size, unlabelled_size = options.batch_size, options.batch_size * options.mu
    rows: dict[str, list[float]] = {'data': [], 'views': [], 'forward + backward': []}
    generator = torch.Generator().manual_seed(0)
    for step in range(options.warmup + options.steps):
        positions = torch.randperm(len(chips), generator=generator)[
            : size + unlabelled_size
        ].tolist()

        def load(positions: list[int] = positions) -> dict[str, dict]:
            samples = [chips[p] for p in positions]
            batch = {
                'labelled': collate_samples(samples[:size]),
                'unlabelled': collate_samples(samples[size:]),
            }
            for part in batch.values():
                part['label'] = torch.randint(6, (len(part['image']),))
                for key in ('image', 'label', 'index'):
                    part[key] = part[key].to(device)
            return batch

        batch, data_time = _timed(load, device)
        batch, views_time = _timed(
            lambda batch=batch: task.on_after_batch_transfer(batch, 0), device
        )

        def learn(batch: dict = batch, step: int = step) -> None:
            loss = task.training_step(batch, step)
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()

        _, learn_time = _timed(learn, device)
        if step >= options.warmup:
            rows['data'].append(data_time)
            rows['views'].append(views_time)
            rows['forward + backward'].append(learn_time)
    total = sum(statistics.median(times) for times in rows.values())
    print(
        f'{options.algorithm}, {options.backbone}, B={size}, mu={options.mu}, '
        f'13 x 64 x 64, {device.type}, {torch.get_num_threads()} threads'
    )
    print('| part | median s / step | share |')
    print('|---|---|---|')
    for name, times in rows.items():
        median = statistics.median(times)
        print(f'| {name} | {median:.3f} | {median / total:.0%} |')
    print(f'| total | {total:.3f} | 100% |')


if __name__ == '__main__':
    main()
