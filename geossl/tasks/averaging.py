"""The weights evaluated and saved: an exponential moving average of the trained ones.

FixMatch and its successors evaluate an EMA of the weights.
:class:`ExponentialMovingAverage` is Lightning's ``WeightAveraging`` (which swaps
the average in for validation, saves it as the checkpoint's weights and keeps the
live ones for resuming) with a decay that warms up, updated over all tensors at
once.
"""

from typing import Any

import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn

#: The module that holds a tensor, and the tensor's attribute name in it.
Place = tuple[nn.Module, str]


def tensor_places(module: nn.Module) -> dict[str, Place]:
    """Where each parameter and buffer of a module lives, by qualified name.

    Args:
        module: the module.

    Returns:
        Qualified name -> (owning module, attribute); a tensor shared by two
        modules is listed once.
    """
    places: dict[str, Place] = {}
    seen: set[int] = set()
    for prefix, owner in module.named_modules():
        tensors = [
            *owner.named_parameters(recurse=False),
            *owner.named_buffers(recurse=False),
        ]
        for name, tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                places[f'{prefix}.{name}' if prefix else name] = (owner, name)
    return places


class ExponentialMovingAverage(WeightAveraging):
    """Lightning's weight averaging with an EMA whose decay warms up.

    After n updates the average keeps ``min(decay, (1 + n) / (10 + n))`` of itself
    (as TensorFlow's and timm's EMAs do), so that short runs are not evaluated with
    weights that are still mostly the random initialisation. ``lerp`` leaves values
    that do not change (the normalisation statistics) exactly as they are, where
    ``decay * a + (1 - decay) * a`` drifts by rounding; integer buffers (counters,
    sample memories) take the current value.

    Each update is one ``torch._foreach_lerp_`` over every floating-point tensor,
    as torch's own EMA (``get_ema_multi_avg_fn``) does, over tensors paired by name
    once: torch's ``AveragedModel.update_parameters`` walks both module trees and
    handles each tensor in Python, which cost 6 of a 120 ms step of a
    ``tf_efficientnet_lite0`` on 2 cores (13 with the teacher's network). Tensors
    are looked up in their modules at each update, so a module moved or converted
    (``.to``) is still followed.

    Args:
        decay: the largest share of the average that an update keeps.
    """

    def __init__(self, decay: float) -> None:
        super().__init__(use_buffers=True)
        self.decay = decay
        self._pairs: list[tuple[Place, Place]] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Copy the module to average when fit begins (Lightning's).

        Args:
            trainer: the Trainer.
            pl_module: the task.
            stage: the Lightning stage.
        """
        super().setup(trainer, pl_module, stage)
        self._pairs = None

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Update the average after each optimiser step.

        Args:
            trainer: the Trainer.
            pl_module: the task.
            outputs: the step's outputs.
            batch: the batch.
            batch_idx: its index.
        """
        if trainer.global_step > self._latest_update_step:
            self.update(pl_module)
            self._latest_update_step = trainer.global_step

    @torch.no_grad()
    def update(self, pl_module: LightningModule) -> None:
        """Move the average towards the module's current weights.

        Args:
            pl_module: the task whose average this is.
        """
        average = self._average_model
        if self._pairs is None:
            self._pairs = paired_places(average.module, pl_module)
        pairs = placed_tensors(self._pairs)
        updates = int(average.n_averaged)
        if updates == 0:
            _copy(pairs)
        else:
            move_average(pairs, kept_share(self.decay, updates))
        average.n_averaged += 1


def paired_places(average: nn.Module, current: nn.Module) -> list[tuple[Place, Place]]:
    """Each tensor of an average's module and the current one's of the same name.

    Args:
        average: the module holding the average.
        current: the module it follows.

    Returns:
        (average's place, current's place) of every name both have.
    """
    theirs = tensor_places(current)
    return [
        (place, theirs[name])
        for name, place in tensor_places(average).items()
        if name in theirs
    ]


def placed_tensors(pairs: list[tuple[Place, Place]]) -> list[tuple[Tensor, Tensor]]:
    """The tensors at pairs of places, looked up at each call.

    A module moved or converted (``.to``) is then still followed.

    Args:
        pairs: pairs of places (:func:`paired_places`).

    Returns:
        The tensors now at them.
    """
    return [(getattr(*mine), getattr(*theirs)) for mine, theirs in pairs]


def kept_share(decay: float, updates: int) -> float:
    """The share of itself an average keeps at an update, warming up to ``decay``.

    Args:
        decay: the largest share.
        updates: the updates made so far.

    Returns:
        ``min(decay, (1 + updates) / (10 + updates))``.
    """
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def move_average(pairs: list[tuple[Tensor, Tensor]], kept: float) -> None:
    """Move averaged tensors towards current ones, in one ``_foreach_lerp_``.

    Args:
        pairs: each averaged tensor and the current tensor it follows; integer
            tensors (counters) take the current value.
        kept: the share of the average kept.
    """
    floating = [pair for pair in pairs if pair[0].is_floating_point()]
    if floating:
        torch._foreach_lerp_(*_unzip(floating), 1.0 - kept)
    _copy([pair for pair in pairs if not pair[0].is_floating_point()])


def _unzip(pairs: list[tuple[Tensor, Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
    return [a for a, _ in pairs], [b for _, b in pairs]


def _copy(pairs: list[tuple[Tensor, Tensor]]) -> None:
    if pairs:
        torch._foreach_copy_(*_unzip(pairs))
