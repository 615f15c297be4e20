"""Learning-rate schedules over a run's training steps."""

import math

from lightning import LightningModule
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_schedule(
    optimizer: Optimizer, module: LightningModule, turn: float
) -> LambdaLR:
    """The learning rate times ``cos(turn * pi * k / K)`` at step k of K, per step.

    K is asked of the Trainer only once training runs: asking while the optimiser
    is configured would set up the training loader before a resumed run restores
    its step count, and its samplers would start over.

    Args:
        optimizer: the optimiser.
        module: the task whose Trainer knows the number of training steps.
        turn: the fraction of half a turn at the last step: FixMatch's 7/16 ends at
            a fifth of the rate, 1/2 ends at zero.

    Returns:
        The scheduler, to step after every optimiser step.
    """

    def factor(step: int) -> float:
        if step == 0:
            return 1.0
        total = max(1, int(module.trainer.estimated_stepping_batches))
        return math.cos(turn * math.pi * step / total)

    return LambdaLR(optimizer, factor)
