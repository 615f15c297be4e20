"""Distillation from the metadata-fed teacher to the image-only student.

The teacher's side is a fixed target (detached): distillation moves the student
towards the teacher, never the teacher towards the student.
"""

import torch.nn.functional as F
from torch import Tensor


def context_distillation(context: Tensor, teacher_context: Tensor) -> Tensor:
    """MSE from the student's context to the teacher's metadata-conditioned context.

    For vision transformers with token fusion the contexts are the outputs of the
    student's extra token and of the teacher's metadata token (the reference
    method); otherwise the pooled features and the metadata-conditioned features.

    Args:
        context: ``(B, D)`` student context.
        teacher_context: ``(B, D)`` teacher context.

    Returns:
        The mean squared error.
    """
    return F.mse_loss(context, teacher_context.detach())


def logit_distillation(
    logits: Tensor, teacher_logits: Tensor, temperature: float, multilabel: bool
) -> Tensor:
    """KL divergence between softened teacher and student predictions.

    Scaled by the squared temperature, so its gradients keep their size as the
    temperature changes (Hinton et al., 2015). Multi-label predictions are
    independent Bernoulli variables, one KL per class.

    Args:
        logits: ``(B, K)`` student logits.
        teacher_logits: ``(B, K)`` teacher logits.
        temperature: the softening temperature.
        multilabel: sigmoid outputs instead of softmax.

    Returns:
        The mean divergence.
    """
    student = logits / temperature
    teacher = teacher_logits.detach() / temperature
    if multilabel:
        target = teacher.sigmoid()
        # KL(t || s) = H(t, s) - H(t) for Bernoulli variables.
        divergence = F.binary_cross_entropy_with_logits(
            student, target
        ) - F.binary_cross_entropy_with_logits(teacher, target)
    else:
        divergence = F.kl_div(
            student.log_softmax(dim=1),
            teacher.log_softmax(dim=1),
            log_target=True,
            reduction='batchmean',
        )
    return divergence * temperature**2
