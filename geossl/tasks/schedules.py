"""Learning-rate schedules over a run's training steps."""

import math

from lightning import LightningModule
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_schedule(
    optimizer: Optimizer, module: LightningModule, turn: float, warmup: float = 0.0
) -> LambdaLR:
    """The learning rate times ``cos(turn * pi * k / K)`` at step k of K, per step.

    Over a warm-up of the first ``warmup * K`` steps the factor also rises
    linearly, from 0 at step 0 to 1 (the first step still fills AdamW's moments).

    K is asked of the Trainer only once training runs: asking while the optimiser
    is configured would set up the training loader before a resumed run restores
    its step count, and its samplers would start over.

    Args:
        optimizer: the optimiser.
        module: the task whose Trainer knows the number of training steps.
        turn: the fraction of half a turn at the last step: FixMatch's 7/16 ends at
            a fifth of the rate, 1/2 ends at zero.
        warmup: the fraction of the K steps that warm up.

    Returns:
        The scheduler, to step after every optimiser step.
    """

    def factor(step: int) -> float:
        if step == 0:
            return 0.0 if warmup else 1.0
        total = max(1, int(module.trainer.estimated_stepping_batches))
        rise = min(1.0, step / max(1.0, warmup * total))
        return rise * math.cos(turn * math.pi * step / total)

    return LambdaLR(optimizer, factor)
