"""Lightning's progress bar as log lines, where standard error is not a terminal.

See :mod:`geossl.progress`: the same rule for Lightning's training, validation,
test and prediction bars.
"""

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, override

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from tqdm.auto import tqdm

from geossl.progress import log_interval


class LogProgressBar(ProgressBar):
    """Lightning's progress as log lines: at most one per interval, and the last.

    Each line is a stage's (epoch, validation, test, predict) percentage, batches
    and metrics, in tqdm's ``NN%|`` form that QGIS reads.

    Args:
        interval: seconds between lines.
        stream: where the lines go; standard error if None.
        clock: seconds, monotonic.
    """

    def __init__(
        self,
        interval: float,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self._stream = stream
        self._clock = clock
        self._enabled = True
        self._started = clock()
        self._written: float | None = None
        self._pending: str | None = None
        self._epoch_batches: float = math.inf

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = self._clock()

    @override
    def on_train_epoch_start(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> None:
        # Lightning counts what is left of max_steps; taken at each batch, the
        # last epoch's count would shrink to 0 as it goes ("Epoch 0: 2/0").
        self._epoch_batches = self.total_train_batches

    @override
    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        epochs = trainer.max_epochs
        epoch = f'Epoch {trainer.current_epoch}' + (
            f'/{epochs - 1}' if epochs is not None and epochs > 0 else ''
        )
        metrics = self.get_metrics(trainer, pl_module)
        self._report(epoch, batch_idx + 1, self._epoch_batches, metrics)

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            total = trainer.num_val_batches[dataloader_idx]
            self._report(self.validation_description, batch_idx + 1, total)

    @override
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        total = trainer.num_test_batches[dataloader_idx]
        self._report(self.test_description, batch_idx + 1, total)

    @override
    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        total = trainer.num_predict_batches[dataloader_idx]
        self._report(self.predict_description, batch_idx + 1, total)

    @override
    def teardown(
        self, trainer: Trainer, pl_module: LightningModule, stage: str
    ) -> None:
        # The last report, if it was not yet due.
        if self._pending is not None:
            self._write(self._pending)

    def _report(
        self,
        stage: str,
        done: int,
        total: float,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        if not self._enabled:
            return
        now = self._clock()
        elapsed = now - self._started
        percent = f'{100 * done / total:3.0f}%| ' if 0 < total < math.inf else ''
        count = f'{done}/{total}' if total < math.inf else f'{done}'
        values = ', '.join(
            f'{name}={value:.3g}' if isinstance(value, float) else f'{name}={value}'
            for name, value in (metrics or {}).items()
        )
        line = f'{stage}: {percent}{count} [{tqdm.format_interval(elapsed)}]'
        self._pending = f'{line} {values}' if values else line
        if self._written is None or now - self._written >= self.interval:
            self._write(self._pending)

    def _write(self, line: str) -> None:
        stream = sys.stderr if self._stream is None else self._stream
        stream.write(line + '\n')
        stream.flush()
        self._written = self._clock()
        self._pending = None


def use_log_lines(trainer: Trainer) -> None:
    """Give the Trainer a :class:`LogProgressBar` where bars cannot redraw.

    Lightning's default bar (exactly its ``TQDMProgressBar``) is replaced; a bar of
    the user's own is kept.

    Args:
        trainer: the Trainer, before it runs.
    """
    interval = log_interval()
    if interval is None:
        return
    for position, callback in enumerate(trainer.callbacks):
        if type(callback) is TQDMProgressBar:
            trainer.callbacks[position] = LogProgressBar(interval)
