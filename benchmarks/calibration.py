"""One figure that says how fast a machine is for geossl: the demo model's speed.

Timings in docs/benchmarks.md are of one machine. This script times what ``make demo``
runs most, the student of ``configs/18SVG.yaml`` (a 13-band ResNet-18 on 32 x 32
chips): a forward pass of a batch of 64 chips (what ``geossl map`` runs) and a
training step of its batch, B = 12 labelled plus mu x B = 48 unlabelled chips
(forward and backward). Compare your machine's figures with those to scale
its timings.

Prints a Markdown table and writes ``results/calibration.csv`` and ``.json``.

    .venv/bin/python benchmarks/calibration.py
"""

import os
import platform

import torch
import torch.nn.functional as F
from report import markdown, median_seconds, save

from geossl.models.classifier import Classifier

CHIP = 32
BANDS = 13
CLASSES = 6


def main() -> None:
    torch.manual_seed(0)
    model = Classifier('resnet18', BANDS, CLASSES, CHIP)
    chips = torch.randn(64, BANDS, CHIP, CHIP)
    step_chips = torch.randn(12 + 48, BANDS, CHIP, CHIP)
    labels = torch.randint(0, CLASSES, (len(step_chips),))

    def forward() -> None:
        with torch.no_grad():
            model.eval()(chips)

    def training_step() -> None:
        model.train()
        loss = F.cross_entropy(model(step_chips).logits, labels)
        model.zero_grad()
        loss.backward()

    rows = [
        {
            'what': 'forward, 64 chips',
            'ms': 1000 * median_seconds(forward, repeats=20, warmup=3),
        },
        {
            'what': 'forward + backward, 60 chips',
            'ms': 1000 * median_seconds(training_step, repeats=10, warmup=2),
        },
    ]
    print(markdown(rows, {'what': '', 'ms': '.0f'}))
    save(
        'calibration',
        rows,
        {
            'model': 'resnet18, 13 bands, 32 x 32',
            'cores': os.cpu_count(),
            'processor': platform.processor() or platform.machine(),
        },
    )


if __name__ == '__main__':
    main()
