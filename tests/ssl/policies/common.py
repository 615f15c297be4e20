"""What the policies' tests share: small batches and the step's view rows."""

import torch
import torch.nn.functional as F
from torch import Tensor

from geossl.ssl.policies import PseudoLabelPolicy, PseudoLabels, ViewRows

PROBS = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
INDEX = torch.arange(2)


def rows(labelled: list, weak: list, first: list, second: list) -> ViewRows:
    tensor = torch.tensor
    return ViewRows(tensor(labelled), tensor(weak), tensor([first, second]))


def batches(seed: int, classes: int, steps: int, size: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(steps, size, 1, generator=generator) * 8
    return list(torch.randn(steps, size, classes, generator=generator) * scales)


def pseudo_label_step(
    policy: PseudoLabelPolicy, weak: Tensor, index: Tensor, seed: int
) -> PseudoLabels:
    """Pseudo-labels of weak-view logits, given as the training step gives them."""
    generator = torch.Generator().manual_seed(seed)
    size, classes = weak.shape
    views = policy.strong_views
    rows = 2 + (1 + views) * size
    logits = torch.randn(rows, classes, generator=generator)
    logits[2 : 2 + size] = weak
    if policy.multilabel:
        labels = torch.randint(2, (2, classes), generator=generator).float()
    else:
        labels = torch.randint(classes, (2,), generator=generator)
    embeddings = None
    if policy.projection_dim is not None:
        raw = torch.randn(rows, policy.projection_dim, generator=generator)
        embeddings = ViewRows.split(F.normalize(raw, dim=1), 2, views)
    return policy.pseudo_label(
        ViewRows.split(logits, 2, views), embeddings, labels, index
    )
