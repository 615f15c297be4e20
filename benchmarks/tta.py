"""Test-time augmentation on the 18SVG demo: accuracy and macro F1, and its cost.

The demo's model (``configs/18SVG.yaml``, ST-FixMatch on the real scene, as ``make
demo`` trains it; trained into ``--workdir`` unless ``--checkpoint`` is given)
classifies the held-out labelled test chips of its run's split with each
``geossl map --tta`` choice: no moves, the 2 flips, the 8 flips and turns. Then
``geossl map`` maps the whole scene with each, in a process of its own, and reports
its rate.

Prints a Markdown table and writes ``results/tta.csv`` and ``results/tta.json``.

    .venv/bin/python benchmarks/tta.py [--checkpoint CKPT] [--workdir DIR]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from mapping import map_command
from report import RESULTS, SCENE, default_device, markdown, save
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from geossl.data.datamodule import GeoDataModule
from geossl.inference.checkpoint import load_task
from geossl.inference.tta import TTA_MOVES, augmented_probabilities

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIG = REPOSITORY / 'configs' / '18SVG.yaml'
LABELS = REPOSITORY / 'examples' / '18SVG-labels.geojson'


def demo_run(run_dir: Path) -> Path:
    """Train the demo model into ``run_dir`` unless it is there.

    Args:
        run_dir: the run folder.

    Returns:
        Its last checkpoint.
    """
    checkpoint = run_dir / 'checkpoints' / 'last.ckpt'
    if not checkpoint.exists():
        command = [sys.executable, '-m', 'geossl.cli', 'fit', '--config', str(CONFIG)]
        command += ['--data.root', str(SCENE), '--data.labels', str(LABELS)]
        command += ['--trainer.default_root_dir', str(run_dir)]
        subprocess.run(command, check=True)
    return checkpoint


@torch.inference_mode()
def test_scores(checkpoint: Path, run_dir: Path, device: torch.device) -> list[dict]:
    """Accuracy and macro F1 on the run's test chips with each augmentation.

    Args:
        checkpoint: the model.
        run_dir: its run folder, holding the split.
        device: where the model runs.

    Returns:
        One row per augmentation.
    """
    task = load_task(checkpoint).to(device).eval()
    data = yaml.safe_load(CONFIG.read_text())['data']
    data |= {'root': str(SCENE), 'labels': str(LABELS), 'run_dir': str(run_dir)}
    datamodule = GeoDataModule(**data)
    datamodule.setup('test')
    classes = int(task.hparams['num_classes'])
    rows = []
    for tta in TTA_MOVES:
        accuracy = MulticlassAccuracy(classes, average='micro')
        f1 = MulticlassF1Score(classes, average='macro')
        chips = 0
        for batch in datamodule.test_dataloader():
            chips += len(batch['label'])
            images = task.views.normalise(batch['image'].to(device))
            predicted = (
                augmented_probabilities(task.probabilities, images, tta)
                .argmax(dim=1)
                .cpu()
            )
            accuracy.update(predicted, batch['label'])
            f1.update(predicted, batch['label'])
        rows.append(
            {
                'tta': tta,
                'looks per window': len(TTA_MOVES[tta]),
                'test chips': chips,
                'accuracy': float(accuracy.compute()),
                'macro F1': float(f1.compute()),
            }
        )
    return rows


def main() -> None:
    """Score the test chips and map the scene with each augmentation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', type=Path)
    parser.add_argument(
        '--workdir', type=Path, default=Path(tempfile.gettempdir()) / 'geossl-tta'
    )
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--device', type=torch.device, default=default_device())
    parser.add_argument('--output', type=Path, default=RESULTS)
    options = parser.parse_args()
    run_dir = options.workdir / '18SVG'
    checkpoint = options.checkpoint or demo_run(run_dir)
    if options.checkpoint:
        run_dir = checkpoint.parent.parent
    rows = test_scores(checkpoint, run_dir, options.device)
    for row in rows:
        measured = map_command(
            checkpoint,
            SCENE,
            options.workdir / 'map.tif',
            options.batch_size,
            str(options.device),
            '--tta',
            row['tta'],
        )
        row |= {'map Mpx/s': measured['map Mpx/s'], 'seconds': measured['seconds']}
    settings = vars(options) | {'checkpoint': str(checkpoint), 'run_dir': str(run_dir)}
    save('tta', rows, settings, options.output)
    print(
        f'Test-time augmentation, 18SVG demo model ({checkpoint}), '
        f'{settings["device"]}, {torch.get_num_threads()} threads'
    )
    formats = {
        'tta': '',
        'looks per window': '',
        'test chips': '',
        'accuracy': '.3f',
        'macro F1': '.3f',
        'map Mpx/s': '.2f',
        'seconds': '.0f',
    }
    print(markdown(rows, formats))


if __name__ == '__main__':
    main()
