"""FixMatch."""

import pytest
import torch

from geossl.ssl.policies import PseudoLabels
from geossl.ssl.policies.fixmatch import FixMatch
from tests.ssl.policies.common import INDEX, PROBS


def test_fixmatch_keeps_confident_hard_labels():
    pseudo = FixMatch(2, threshold=0.8)(PROBS, INDEX)
    assert pseudo.targets.tolist() == [0, 0]
    assert pseudo.weights.tolist() == [1.0, 0.0]


def test_weighted_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    pseudo = PseudoLabels(torch.tensor([0, 0]), torch.tensor([1.0, 0.0]))
    loss = FixMatch(2).consistency_loss(logits, pseudo)
    # Mean over the batch: CE of the kept sample / 2.
    assert loss.item() == pytest.approx(torch.log1p(torch.exp(torch.tensor(-2.0))) / 2)
