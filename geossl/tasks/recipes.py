"""How the task's weights are optimised and averaged: its training recipe.

A :class:`Recipe` is an optimiser, a learning rate, a warm-up, the backbones' share
of the rate, the weight decay and the averaging of the weights. From scratch the
task follows FixMatch (:data:`SCRATCH_RECIPES`); from pretrained weights, the recipe
measured in ``benchmarks/fine_tuning.py`` (:data:`FINE_TUNING_RECIPE`). What the
user sets wins over the base recipe's (:meth:`Recipe.filled`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from lightning import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

from geossl.models.backbones import is_vision_transformer
from geossl.tasks.schedules import cosine_schedule

Optimizer = Literal['sgd', 'adamw']


@dataclass(frozen=True)
class Recipe:
    """How the weights are optimised and averaged: the task's ``recipe``.

    Fields left None are the base recipe's: :data:`FINE_TUNING_RECIPE` from initial
    weights, else :data:`SCRATCH_RECIPES` (:meth:`filled`).

    Attributes:
        optimizer: ``sgd`` (FixMatch's: momentum 0.9, Nesterov) or ``adamw``.
        lr: the peak learning rate, of the heads.
        warmup: the fraction of training steps over which the rate rises linearly
            from zero.
        backbone_lr_factor: the backbones' rate as a fraction of ``lr``.
        weight_decay: weight decay of weights (not of biases and norms).
        ema_decay: decay of the exponential moving average of the weights that is
            evaluated and saved, as FixMatch evaluates an EMA model
            (:class:`~geossl.tasks.averaging.ExponentialMovingAverage`); None to
            evaluate the raw weights.
    """

    optimizer: Optimizer | None = None
    lr: float | None = None
    warmup: float | None = None
    backbone_lr_factor: float | None = None
    weight_decay: float = 5e-4
    ema_decay: float | None = 0.999

    def filled(self, model: str, fine_tuning: bool) -> 'Recipe':
        """This recipe with the fields left None taken from the base recipe.

        Args:
            model: the timm model (vision transformers train from scratch with
                AdamW).
            fine_tuning: whether the task starts from initial weights.

        Returns:
            The recipe, every field set; the fine-tuning recipe is said in the log.
        """
        if fine_tuning and self.optimizer is None and self.lr is None:
            base = FINE_TUNING_RECIPE
            rank_zero_info(
                f'initial weights and no optimiser set, so the fine-tuning recipe: '
                f'{base.optimizer}, lr {base.lr:g}, warm-up {base.warmup:g}, '
                f'backbone lr x {base.backbone_lr_factor:g} (set '
                '--model.recipe.optimizer or --model.recipe.lr to choose)'
            )
        else:
            optimizer = self.optimizer or (
                'adamw' if is_vision_transformer(model) else 'sgd'
            )
            base = SCRATCH_RECIPES[optimizer]
        unset = {
            name: getattr(base, name)
            for name in ('optimizer', 'lr', 'warmup', 'backbone_lr_factor')
            if getattr(self, name) is None
        }
        return replace(self, **unset)


#: From scratch, FixMatch's SGD for CNNs; AdamW for vision transformers.
SCRATCH_RECIPES = {
    'sgd': Recipe('sgd', 0.03, 0.0, 1.0),
    'adamw': Recipe('adamw', 5e-4, 0.0, 1.0),
}

#: From pretrained weights, chosen by measurement (benchmarks/fine_tuning.py):
#: SGD at 0.03 wrecks pretrained features in the first steps (74 % test error
#: against 37 %); 1e-3 did as well as 3e-4, and neither a warm-up nor a tenth of
#: the rate for the backbone helped.
FINE_TUNING_RECIPE = Recipe('adamw', 3e-4, 0.0, 1.0)


#: The devices with fused SGD and AdamW kernels in every torch that geossl supports.
FUSED_DEVICES = ('cpu', 'cuda')


def configure_optimizer(
    module: LightningModule, recipe: Recipe, backbones: Sequence[nn.Module]
) -> OptimizerLRSchedulerConfig:
    """The recipe's optimiser, without decay on biases and norms, and its schedule.

    The learning rate rises linearly over the warm-up, then follows
    ``lr * cos(7 pi k / (16 K))`` over the K training steps, as in FixMatch;
    the backbones' is ``backbone_lr_factor`` times the rest's.

    Args:
        module: the task.
        recipe: its recipe, every field set (:meth:`Recipe.filled`).
        backbones: its backbones.

    Returns:
        The optimiser and its per-step schedule.
    """
    in_backbones = {id(p) for net in backbones for p in net.parameters()}
    groups = []
    for in_backbone in (True, False):
        factor = recipe.backbone_lr_factor if in_backbone else 1.0
        trained = [
            p
            for p in module.parameters()
            if p.requires_grad and (id(p) in in_backbones) == in_backbone
        ]
        for decayed in (True, False):
            params = [p for p in trained if (p.ndim > 1) == decayed]
            if params:
                groups.append(
                    {
                        'params': params,
                        'lr': recipe.lr * factor,
                        'weight_decay': recipe.weight_decay if decayed else 0.0,
                    }
                )
    # One fused kernel over all parameters where the device has one (2 to 3 times
    # faster than torch's default loop on the CPU), torch's default elsewhere.
    fused = {'fused': True} if module.device.type in FUSED_DEVICES else {}
    if recipe.optimizer == 'sgd':
        optimizer = torch.optim.SGD(groups, momentum=0.9, nesterov=True, **fused)
    else:
        optimizer = torch.optim.AdamW(groups, **fused)
    return {
        'optimizer': optimizer,
        'lr_scheduler': {
            'scheduler': cosine_schedule(optimizer, module, 7 / 16, recipe.warmup),
            'interval': 'step',
        },
    }
