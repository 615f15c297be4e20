"""How the task's weights are optimised and averaged: its training recipe.

A :class:`Recipe` is an optimiser, a learning rate, a warm-up and the backbones'
share of the rate. From scratch the task follows FixMatch (:data:`SCRATCH_RECIPES`);
from pretrained weights, the recipe measured in ``benchmarks/fine_tuning.py``
(:data:`FINE_TUNING_RECIPE`). Options the user sets win over the recipe's
(:func:`fill_from_recipe`).
"""

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
    """How the weights are optimised: optimiser, learning rate and its schedule.

    Attributes:
        optimizer: ``sgd`` (momentum 0.9, Nesterov) or ``adamw``.
        lr: the peak learning rate, of the heads.
        warmup: the fraction of training steps over which the rate rises linearly
            from zero.
        backbone_lr_factor: the backbones' rate as a fraction of ``lr``.
    """

    optimizer: Optimizer
    lr: float
    warmup: float = 0.0
    backbone_lr_factor: float = 1.0


#: From scratch, FixMatch's SGD for CNNs; AdamW for vision transformers.
SCRATCH_RECIPES = {'sgd': Recipe('sgd', 0.03), 'adamw': Recipe('adamw', 5e-4)}

#: From pretrained weights, chosen by measurement (benchmarks/fine_tuning.py):
#: SGD at 0.03 wrecks pretrained features in the first steps (74 % test error
#: against 37 %); 1e-3 did as well as 3e-4, and neither a warm-up nor a tenth of
#: the rate for the backbone helped.
FINE_TUNING_RECIPE = Recipe('adamw', 3e-4)


def fill_from_recipe(hparams: MutableMapping[str, Any], fine_tuning: bool) -> None:
    """Fill the optimiser settings left unset from the recipe, and say so.

    Args:
        hparams: the task's hyperparameters: ``model``, ``optimizer``, ``lr``,
            ``warmup`` and ``backbone_lr_factor`` (None where unset).
        fine_tuning: whether the task starts from initial weights.
    """
    if fine_tuning and hparams['optimizer'] is None and hparams['lr'] is None:
        recipe = FINE_TUNING_RECIPE
        rank_zero_info(
            f'initial weights and no optimiser set, so the fine-tuning recipe: '
            f'{recipe.optimizer}, lr {recipe.lr:g}, warm-up {recipe.warmup:g}, '
            f'backbone lr x {recipe.backbone_lr_factor:g} (set --model.optimizer '
            'or --model.lr to choose)'
        )
    else:
        optimizer = hparams['optimizer'] or (
            'adamw' if is_vision_transformer(hparams['model']) else 'sgd'
        )
        recipe = SCRATCH_RECIPES[optimizer]
    for name in ('optimizer', 'lr', 'warmup', 'backbone_lr_factor'):
        if hparams[name] is None:
            hparams[name] = getattr(recipe, name)


#: The devices with fused SGD and AdamW kernels in every torch that geossl supports.
FUSED_DEVICES = ('cpu', 'cuda')


def configure_optimizer(
    module: LightningModule, backbones: Sequence[nn.Module]
) -> OptimizerLRSchedulerConfig:
    """The recipe's optimiser, without decay on biases and norms, and its schedule.

    The learning rate rises linearly over the warm-up, then follows
    ``lr * cos(7 pi k / (16 K))`` over the K training steps, as in FixMatch;
    the backbones' is ``backbone_lr_factor`` times the rest's.

    Args:
        module: the task, its recipe filled in its hyperparameters
            (:func:`fill_from_recipe`, and ``weight_decay``).
        backbones: its backbones.

    Returns:
        The optimiser and its per-step schedule.
    """
    hparams = module.hparams
    in_backbones = {id(p) for net in backbones for p in net.parameters()}
    groups = []
    for in_backbone in (True, False):
        factor = hparams['backbone_lr_factor'] if in_backbone else 1.0
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
                        'lr': hparams['lr'] * factor,
                        'weight_decay': hparams['weight_decay'] if decayed else 0.0,
                    }
                )
    # One fused kernel over all parameters where the device has one (2 to 3 times
    # faster than torch's default loop on the CPU), torch's default elsewhere.
    fused = {'fused': True} if module.device.type in FUSED_DEVICES else {}
    if hparams['optimizer'] == 'sgd':
        optimizer = torch.optim.SGD(groups, momentum=0.9, nesterov=True, **fused)
    else:
        optimizer = torch.optim.AdamW(groups, **fused)
    return {
        'optimizer': optimizer,
        'lr_scheduler': {
            'scheduler': cosine_schedule(optimizer, module, 7 / 16, hparams['warmup']),
            'interval': 'step',
        },
    }
