"""The network alone, channels-first against channels-last, on this machine's device.

What ``memory_format=auto`` was chosen from (:mod:`geossl.models.memory_format`):
for each timm backbone and input, a training step of the network alone (forward,
backward, SGD step) and a forward pass in evaluation, with its weights laid out
channels-first and channels-last, medians after warm-up. Needs only torch and timm,
so ``gpu.sh`` runs it on a GPU too.

Prints a Markdown table and writes ``results/memory_format.csv`` and ``.json``
(``--output`` elsewhere).

    .venv/bin/python benchmarks/memory_format.py [--device cuda]
"""

import argparse
from pathlib import Path

import timm
import torch
from report import RESULTS, default_device, markdown, median_seconds, save

#: (timm model, bands, chip size): the benchmarks' settings and other families.
NETWORKS = (
    ('tf_efficientnet_lite0', 3, 32),
    ('tf_efficientnet_lite0', 13, 64),
    ('mobilenetv3_small_100', 13, 64),
    ('resnet18', 13, 64),
    ('resnet50', 13, 64),
    ('convnext_atto', 13, 64),
)
LAYOUTS = {
    'channels-first': torch.contiguous_format,
    'channels-last': torch.channels_last,
}


def timings(
    model: str,
    bands: int,
    size: int,
    layout: torch.memory_format,
    batch: int,
    device: torch.device,
) -> dict[str, float]:
    """Milliseconds of a training step and of an evaluation forward pass.

    Args:
        model: the timm model.
        bands: input bands.
        size: chip size.
        layout: the weights' memory format.
        batch: images per step.
        device: where to run.

    Returns:
        ``train ms`` and ``eval ms``.
    """
    torch.manual_seed(0)
    network = timm.create_model(model, in_chans=bands, num_classes=10).to(device)
    network = network.to(memory_format=layout)
    images = torch.randn(batch, bands, size, size, device=device)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        network(images).logsumexp(dim=1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    def evaluate() -> None:
        with torch.inference_mode():
            network(images)

    network.train()
    train = median_seconds(step, repeats=10, warmup=3, device=device)
    network.eval()
    evaluation = median_seconds(evaluate, repeats=10, warmup=3, device=device)
    return {'train ms': 1e3 * train, 'eval ms': 1e3 * evaluation}


def main() -> None:
    """Time every network in both layouts and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', type=torch.device, default=default_device())
    parser.add_argument('--batch', type=int, default=40)
    parser.add_argument('--output', type=Path, default=RESULTS)
    options = parser.parse_args()
    rows = []
    for model, bands, size in NETWORKS:
        row: dict[str, object] = {'network': f'{model}, {bands} x {size} x {size}'}
        for name, layout in LAYOUTS.items():
            measured = timings(
                model, bands, size, layout, options.batch, options.device
            )
            row |= {f'{key}, {name}': value for key, value in measured.items()}
        for key in ('train ms', 'eval ms'):
            first, last = (row[f'{key}, {name}'] for name in LAYOUTS)
            row[f'{key.split()[0]}: last / first'] = last / first
        rows.append(row)
    save(
        'memory_format',
        rows,
        vars(options) | {'device': str(options.device)},
        options.output,
    )
    print(
        f'{options.batch} images, {options.device}, {torch.get_num_threads()} threads, '
        f'torch {torch.__version__}'
    )
    print(markdown(rows, {key: '' if key == 'network' else '.2f' for key in rows[0]}))


if __name__ == '__main__':
    main()
