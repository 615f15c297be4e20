"""Can the teacher's metadata branch resolve where EuroSAT's classes change?

A probe of the location encodings alone, on the real places of the 27,000 EuroSAT
tiles (``eurosat_metadata.parquet``), with no image: the teacher's metadata encoder
(:class:`~geossl.models.metadata.MetadataEncoder`, as the teacher builds it) and a
linear head, trained on the training tiles' places and classes, against the
nearest training tile's class (location 1-NN, what the data holds). With every
training label, this bounds what the teacher can learn from places, however good its
pseudo-labels: an encoding that cannot resolve a few kilometres cannot use that
neighbours share their class.

Splits as in ``teacher_student.py``: random (20 % test) and longitude (test the
eastern 20 %). Prints a table and writes ``results/location_probe.{csv,json}``.

    .venv/bin/python benchmarks/location_probe.py [--epochs 300] [--seeds 0 1 2]
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
from report import EUROSAT_LOCATIONS, markdown, save
from torch import nn

from geossl.models.metadata import MetadataEncoder, unit_vectors

#: The encodings probed: a label, and the encoder's arguments.
ENCODINGS = {
    'sinusoidal, 4 octaves (default)': {'location_scales': 4},
    'sinusoidal, 8 octaves': {'location_scales': 8},
    'sinusoidal, 12 octaves': {'location_scales': 12},
    'sinusoidal, 16 octaves': {'location_scales': 16},
    'harmonics, 10 degrees': {
        'location_encoding': 'harmonics',
        'harmonics_degrees': 10,
    },
    'harmonics, 30 degrees': {
        'location_encoding': 'harmonics',
        'harmonics_degrees': 30,
    },
}


def _splits(
    places: pd.DataFrame, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training and test positions of the random and the longitude split."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(places))
    test = len(places) // 5
    by_lon = np.argsort(places['lon'].to_numpy())
    return {
        'random': (order[test:], order[:test]),
        # The western 60 % train, the eastern 20 % test (the 20 % between validate).
        'longitude': (by_lon[: int(0.6 * len(places))], by_lon[-test:]),
    }


def _nearest_accuracy(
    points: torch.Tensor, labels: torch.Tensor, train: np.ndarray, test: np.ndarray
) -> float:
    """Accuracy of the class of the nearest training place (great-circle order)."""
    nearest = torch.cdist(points[test], points[train]).argmin(dim=1)
    return float((labels[train][nearest] == labels[test]).float().mean())


def _encoder_accuracy(
    meta: torch.Tensor,
    labels: torch.Tensor,
    train: np.ndarray,
    test: np.ndarray,
    options: dict[str, object],
    epochs: int,
) -> float:
    """Accuracy of the metadata encoder and a linear head, trained on all labels."""
    torch.manual_seed(0)
    encoder = MetadataEncoder('location', **options)
    model = nn.Sequential(encoder, nn.Linear(encoder.dim, int(labels.max()) + 1))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    mask = torch.tensor([True, True, False]).expand(len(meta), 3)
    for _ in range(epochs):
        for batch in torch.randperm(len(train)).split(2048):
            rows = torch.as_tensor(train)[batch]
            loss = nn.functional.cross_entropy(
                model[1](model[0](meta[rows], mask[rows])), labels[rows]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        logits = model[1](model[0](meta[test], mask[test]))
    return float((logits.argmax(dim=1) == labels[test]).float().mean())


def main() -> None:
    """Probe every encoding on both splits; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    options = parser.parse_args()
    places = pd.read_parquet(EUROSAT_LOCATIONS)
    lon = torch.tensor(places['lon'].to_numpy(), dtype=torch.float32)
    lat = torch.tensor(places['lat'].to_numpy(), dtype=torch.float32)
    labels = torch.tensor(pd.factorize(places['label_name'])[0])
    meta = torch.stack([lon, lat, torch.zeros_like(lon)], dim=1)
    points = unit_vectors(lon.double(), lat.double())
    rows = []
    for seed in options.seeds:
        for split, (train, test) in _splits(places, seed).items():
            rows.append(
                {
                    'split': split,
                    'seed': seed,
                    'model': 'location 1-NN (all training labels)',
                    'accuracy': _nearest_accuracy(points, labels, train, test),
                    'seconds': 0.0,
                }
            )
            for name, encoding in ENCODINGS.items():
                start = time.perf_counter()
                accuracy = _encoder_accuracy(
                    meta, labels, train, test, encoding, options.epochs
                )
                rows.append(
                    {
                        'split': split,
                        'seed': seed,
                        'model': f'metadata encoder: {name}',
                        'accuracy': accuracy,
                        'seconds': time.perf_counter() - start,
                    }
                )
                print(rows[-1], flush=True)
                # Written as each row is measured: a stopped probe keeps them.
                save('location_probe', rows, vars(options))
    table = (
        pd.DataFrame(rows)
        .groupby(['split', 'model'], sort=False)['accuracy']
        .mean()
        .reset_index()
    )
    formats = {'split': '', 'model': '', 'accuracy': '.3f'}
    print(markdown(table.to_dict(orient='records'), formats))


if __name__ == '__main__':
    main()
