"""Figures of a run, drawn by callbacks, so that the task only computes."""

from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

#: The evaluation stages that get a figure.
STAGES = ('val', 'test')


class ConfusionMatrixFigure(Callback):
    """Each validation and test epoch's confusion matrix as a PNG in the log folder.

    Writes ``<log_dir>/confusion_<stage>_epoch<N>.png`` (rows: true class, columns:
    predicted), drawn by torchmetrics' own plot, from the logits that the task's
    evaluation steps return. Counts are summed over every process; the first one
    draws. Nothing is drawn for the sanity check, for multi-label tasks, or for a
    logger without a folder.
    """

    def __init__(self) -> None:
        """Initialise the callback (its matrices are made at setup)."""
        super().__init__()
        self.matrices: dict[str, MulticlassConfusionMatrix] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Make a matrix per stage for the task's classes.

        Args:
            trainer: the Trainer.
            pl_module: the task; its ``hparams`` give the class count and kind.
            stage: the Lightning stage.
        """
        if getattr(pl_module, 'multilabel', False):
            return
        num_classes = pl_module.hparams['num_classes']
        self.matrices = {s: MulticlassConfusionMatrix(num_classes) for s in STAGES}

    def _update(self, stage: str, logits: Any, batch: dict[str, Any]) -> None:
        matrix = self.matrices.get(stage)
        if matrix is None or not isinstance(logits, Tensor):
            return
        matrix.to(logits.device).update(logits.argmax(dim=1), batch['label'])

    def _draw(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        matrix = self.matrices.get(stage)
        if matrix is None:
            return
        counts = matrix.compute()  # A collective: every process sums.
        matrix.reset()
        log_dir = trainer.log_dir  # Also a collective: every process asks.
        if log_dir is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        names = list(pl_module.class_names)
        size = max(4.0, 0.6 * len(names) + 2)
        figure = Figure(figsize=(size, size), constrained_layout=True)
        axes = figure.subplots()
        matrix.plot(counts, ax=axes, labels=names, cmap='Blues')
        axes.set_title(f'{stage}, epoch {epoch}')
        path = Path(log_dir) / f'confusion_{stage}_epoch{epoch}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Count a validation or test batch's predictions.

        Args:
            trainer: the Trainer (its state says validation or test).
            pl_module: the task.
            outputs: the step's logits.
            batch: the batch, with its labels.
            batch_idx: index of the batch.
            dataloader_idx: index of the loader.
        """
        self._update(_stage(trainer), outputs, batch)

    def on_validation_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> None:
        """Draw the epoch's matrix.

        Args:
            trainer: the Trainer (its state says validation or test).
            pl_module: the task.
        """
        self._draw(trainer, pl_module, _stage(trainer))

    on_test_batch_end = on_validation_batch_end
    on_test_epoch_end = on_validation_epoch_end


def _stage(trainer: Trainer) -> str:
    return 'test' if trainer.testing else 'val'
