"""What a training run cost: parameters, wall time, peak memory and device.

:class:`ComputeReport` writes ``compute.json`` into the run's log folder (next to
Lightning's ``metrics.csv`` and ``hparams.yaml``) when fitting ends, also when it
ends with an error or an interrupt, so that every run says what it used.
"""

import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from geossl.atomic import atomic_output

#: The report's file name in the run's log folder.
REPORT_NAME = 'compute.json'


def peak_rss_bytes() -> int | None:
    """The peak resident memory of this process.

    Returns:
        Bytes; None where the platform does not tell (Windows).
    """
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return None
    # Linux reports kibibytes, macOS bytes.
    unit = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def parameter_counts(module: torch.nn.Module) -> dict[str, int]:
    """Parameters in all, trainable, and in each top-level part that has any.

    Args:
        module: the model.

    Returns:
        ``{'total': n, 'trainable': n, '<child name>': n, ...}``.
    """
    counts = {
        'total': sum(p.numel() for p in module.parameters()),
        'trainable': sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    for name, child in module.named_children():
        count = sum(p.numel() for p in child.parameters())
        if count:
            counts[name] = count
    return counts


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'{device} ({torch.cuda.get_device_name(device)})'
    if device.type == 'cpu':
        return f'cpu ({platform.machine()})'
    return str(device)


class ComputeReport(Callback):
    """Writes ``compute.json`` into the run's log folder at the end of fitting.

    The report holds the parameter counts, the wall time and optimiser steps of this
    fit (a resumed run reports its own part), the median time of a training step
    (from one step's start to the next's, data included; the few intervals that
    hold a validation or a checkpoint do not move the median), the peak memory
    (resident, and CUDA memory allocated on the device) and the device, processes
    and threads used. Memory is the first process's: DataLoader workers and other
    DDP processes have their own.
    """

    def __init__(self) -> None:
        """Start with no run measured."""
        self._start_time = 0.0
        self._start_step = 0
        self._log_dir: str | None = None
        # The last steps' start times: enough for a median, bounded for long runs.
        self._step_starts: deque[float] = deque(maxlen=10_000)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Note when a training step starts.

        Args:
            trainer: the Trainer.
            pl_module: the model.
            batch: the batch.
            batch_idx: its index.
        """
        self._step_starts.append(time.perf_counter())

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock and the CUDA peak-memory counter.

        Args:
            trainer: the Trainer.
            pl_module: the model.
        """
        self._start_time = time.perf_counter()
        self._start_step = trainer.global_step
        # Every process asks at once: the property is a collective under DDP, which
        # one process alone (say, failing) could not call later.
        self._log_dir = trainer.log_dir
        if pl_module.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the report of a fit that finished.

        Args:
            trainer: the Trainer.
            pl_module: the model.
        """
        self._write(trainer, pl_module, 'finished')

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Write the report of a fit that stopped on an error or an interrupt.

        Args:
            trainer: the Trainer.
            pl_module: the model.
            exception: why it stopped.
        """
        if self._start_time:
            self._write(trainer, pl_module, f'stopped: {type(exception).__name__}')

    def report(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The report of the fit so far.

        Args:
            trainer: the Trainer.
            pl_module: the model.

        Returns:
            The values written to ``compute.json``.
        """
        wall_time = time.perf_counter() - self._start_time
        steps = trainer.global_step - self._start_step
        device = pl_module.device
        intervals = [b - a for a, b in itertools.pairwise(self._step_starts)]
        return {
            'parameters': parameter_counts(pl_module),
            'wall_time_s': round(wall_time, 3),
            'steps': steps,
            'seconds_per_step': round(wall_time / steps, 4) if steps else None,
            'median_step_s': (
                round(statistics.median(intervals), 4) if intervals else None
            ),
            'peak_rss_bytes': peak_rss_bytes(),
            'peak_cuda_memory_bytes': (
                torch.cuda.max_memory_allocated(device)
                if device.type == 'cuda'
                else None
            ),
            'device': _device_name(device),
            'processes': trainer.world_size,
            'torch_threads': torch.get_num_threads(),
            'cpu_count': os.cpu_count(),
            'precision': str(trainer.precision),
            'versions': {
                'python': platform.python_version(),
                'torch': torch.__version__,
            },
        }

    def _write(self, trainer: Trainer, pl_module: LightningModule, status: str) -> None:
        if not trainer.is_global_zero or self._log_dir is None:
            return
        report = {'status': status} | self.report(trainer, pl_module)
        path = Path(self._log_dir) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as partial:
            partial.write_text(json.dumps(report, indent=2) + '\n')
