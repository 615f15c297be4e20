"""Dash: a loss threshold that falls over training."""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.averaging import check_momentum, update_ema_
from geossl.ssl.distributed import mean_across_processes
from geossl.ssl.policies.base import (
    PseudoLabels,
    ViewRows,
    WeakViewPolicy,
    budget_stage,
)


class Dash(WeakViewPolicy, name='dash', display_name='Dash'):
    """A loss threshold that falls over training, set by the labelled loss.

    Xu et al., Dash, ICML 2021. For ``warmup_steps`` training steps no unlabelled
    sample is kept (supervised warm-up) while the policy follows the labelled
    cross-entropy with a moving average; at the end of warm-up that average is
    ``rho_hat``. Then the k-th step after warm-up (k = 1, 2, ...) is in stage
    ``t = 1 + (k - 1) // decay_every``, with the threshold
    ``rho_t = max(scale * gamma^-(t - 1) * rho_hat, rho_min)``. A sample is kept
    when the cross-entropy of its weak view against its hard pseudo-label,
    ``-log(max p)``, is below ``rho_t``.

    ``rho_hat`` comes from the labelled training batches, not, as in USB, from the
    evaluation set, whose labels training must not see. Pseudo-labels are hard
    throughout (USB sharpens soft ones until ``rho_t`` reaches ``rho_min``).
    """

    def __init__(
        self,
        num_classes: int,
        warmup_steps: int = 2048,
        decay_every: int = 10240,
        gamma: float = 1.27,
        scale: float = 1.0001,
        rho_min: float = 0.05,
        ema: float = 0.99,
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            warmup_steps: supervised steps before pseudo-labels are used.
            decay_every: steps per stage of the threshold (USB: 10 epochs of 1,024).
            gamma: the threshold's decay per stage (> 1).
            scale: the threshold's scale at the first stage (the paper's C).
            rho_min: the threshold's floor.
            ema: momentum of the labelled-loss average.
        """
        super().__init__(num_classes)
        check_momentum(ema)
        if warmup_steps < 1 or decay_every < 1:
            raise GeosslInputError(
                'warmup_steps' if warmup_steps < 1 else 'decay_every',
                'must be a positive number of steps',
            )
        if gamma <= 1 or scale <= 0 or rho_min <= 0:
            raise GeosslInputError(
                'algorithm_options', 'dash needs gamma > 1, scale > 0 and rho_min > 0'
            )
        self.warmup_steps = warmup_steps
        self.decay_every = decay_every
        self.gamma = gamma
        self.scale = scale
        self.rho_min = rho_min
        self.ema = ema
        self.register_buffer('step', torch.tensor(0))
        self.register_buffer('labelled_loss', torch.tensor(float('nan')))

    @classmethod
    def budget_options(cls, steps: int) -> dict[str, Any]:
        """Warm-up and stages of a twentieth of the run, whatever its length.

        A 2,048-step warm-up and stages of 10,240 steps (USB's) would keep a run of
        a few thousand steps supervised throughout; scaled, the threshold falls to
        its floor (about 15 stages at gamma 1.27) near the end of the run.

        Args:
            steps: the run's training steps.

        Returns:
            ``warmup_steps`` and ``decay_every`` of
            :func:`~geossl.ssl.policies.base.budget_stage` steps.
        """
        stage = budget_stage(steps)
        return {'warmup_steps': stage, 'decay_every': stage}

    @property
    def warming_up(self) -> bool:
        """Whether the supervised warm-up is still running."""
        return int(self.step) <= self.warmup_steps

    def threshold(self) -> Tensor:
        """The current loss threshold ``rho_t`` (0 during warm-up)."""
        if self.warming_up:
            return torch.zeros_like(self.labelled_loss)
        stage = 1 + (int(self.step) - self.warmup_steps - 1) // self.decay_every
        rho = self.scale * self.gamma ** -(stage - 1) * self.labelled_loss
        return rho.clamp(min=self.rho_min)

    def pseudo_label(  # noqa: D102
        self,
        logits: ViewRows,
        embeddings: ViewRows | None,
        labels: Tensor,
        index: Tensor,
    ) -> PseudoLabels:
        self.observe_labelled(logits.labelled.detach(), labels)
        return super().pseudo_label(logits, embeddings, labels, index)

    def observe_labelled(self, logits: Tensor, labels: Tensor) -> None:
        """Count a training step and, during warm-up, average its labelled loss.

        Args:
            logits: ``(B, K)`` logits of the labelled weak views, detached.
            labels: their labels.
        """
        if not self.training:
            return
        self.step.add_(1)
        if not self.warming_up:
            return  # rho_hat is fixed at the end of warm-up.
        loss = mean_across_processes(F.cross_entropy(logits, labels).detach())
        if self.labelled_loss.isnan():
            self.labelled_loss.copy_(loss)
        else:
            update_ema_(self.labelled_loss, loss, self.ema)

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence, targets = probs.max(dim=1)
        loss = -confidence.clamp(min=1e-12).log()
        return PseudoLabels(targets, (loss < self.threshold()).float())

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {'threshold': self.threshold(), 'rho_hat': self.labelled_loss}
