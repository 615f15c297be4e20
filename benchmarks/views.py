"""Weak and strong views: geossl's batched pipeline vs one sample at a time.

One training step's views, as the task makes them: the weak view of B labelled
images, and the weak and strong views of mu x B unlabelled ones, on real 13-band
64 x 64 EuroSAT-MS tiles (drawn with replacement from the sample), on the device
Lightning would pick. The per-sample run applies the very same operations to each
image on its own, as torchvision-style pipelines (USB's) do in DataLoader workers.
Prints a Markdown table of median times and images per second, and writes
``results/views.csv`` and ``results/views.json``.

    .venv/bin/python benchmarks/views.py [--batch_size 64] [--mu 7]
"""

import argparse
from pathlib import Path

import torch
from report import RESULTS, SHARED_DATA, default_device, markdown, median_seconds, save

from geossl.augment.views import Views
from geossl.data.folder import ImageFolderDataset
from geossl.data.stats import band_statistics


def main() -> None:
    """Time both pipelines and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--mu', type=int, default=7)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', type=torch.device, default=default_device())
    parser.add_argument('--output', type=Path, default=RESULTS)
    options = parser.parse_args()
    device = options.device
    tiles = ImageFolderDataset(SHARED_DATA / 'eurosat-ms-sample', progress=False)
    mean, std = band_statistics(tiles, range(len(tiles)), len(tiles), seed=0)
    views = Views(mean, std).to(device)
    size, unlabelled_size = options.batch_size, options.batch_size * options.mu
    generator = torch.Generator().manual_seed(0)
    picks = torch.randint(len(tiles), (size + unlabelled_size,), generator=generator)
    images = torch.stack([tiles.read_image(int(p)) for p in picks]).to(device)
    labelled, unlabelled = views.normalise(images).split([size, unlabelled_size])

    def batched() -> None:
        views.weak(labelled)
        views.weak(unlabelled)
        views.strong(unlabelled)

    def one_at_a_time() -> None:
        for image in labelled:
            views.weak(image[None])
        for image in unlabelled:
            views.weak(image[None])
            views.strong(image[None])

    torch.manual_seed(0)
    timings = {
        'batched (geossl)': median_seconds(batched, options.repeats, device=device),
        'one sample at a time': median_seconds(
            one_at_a_time, max(1, options.repeats // 2), device=device
        ),
    }
    count = size + unlabelled_size
    fastest = min(timings.values())
    rows = [
        {
            'pipeline': name,
            'median s / step': seconds,
            'images / s': count / seconds,
            'slower than batched': seconds / fastest,
        }
        for name, seconds in timings.items()
    ]
    settings = {
        'batch_size': size,
        'mu': options.mu,
        'image': '13 x 64 x 64',
        'device': str(device),
        'repeats': options.repeats,
    }
    save('views', rows, settings, options.output)
    print(
        f'Views of one step: weak of B={size} labelled, weak + strong of '
        f'{unlabelled_size} unlabelled 13 x 64 x 64 tiles, {device.type}, '
        f'{torch.get_num_threads()} threads'
    )
    print(
        markdown(
            rows,
            {
                'pipeline': '',
                'median s / step': '.3f',
                'images / s': ',.0f',
                'slower than batched': '.1f',
            },
        )
    )


if __name__ == '__main__':
    main()
