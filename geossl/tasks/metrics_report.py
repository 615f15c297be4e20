"""``test_metrics.json``: what a test run measured, where the next tool finds it.

``geossl test`` prints its metrics and the loggers keep them in their own formats;
this callback also writes them, with the split they were measured on, to
``<default_root_dir>/test_metrics.json``, so that ``geossl cross-validation`` can
put the folds of a cross-validation in one table.
"""

import json
from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from geossl.atomic import atomic_output

#: The file each test run writes in its run folder.
TEST_METRICS_NAME = 'test_metrics.json'


class MetricsReport(Callback):
    """Write the test metrics and the split's settings at the end of testing."""

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write ``test_metrics.json`` (the first process only).

        Args:
            trainer: the Trainer.
            pl_module: the model.
        """
        if not trainer.is_global_zero:
            return
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith('test_') and value.numel() == 1
        }
        datamodule = getattr(trainer, 'datamodule', None)
        split = getattr(datamodule, 'split', None)
        report = {
            'metrics': metrics,
            'checkpoint': trainer.ckpt_path,
            'folds': getattr(split, 'folds', None),
            'fold': split.fold if getattr(split, 'folds', None) else None,
        }
        path = Path(trainer.default_root_dir) / TEST_METRICS_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as partial:
            partial.write_text(json.dumps(report, indent=2) + '\n')
