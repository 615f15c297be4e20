"""FlexMatch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geossl.errors import GeosslInputError
from geossl.ssl.policies.flexmatch import FlexMatch
from tests.ssl.policies.common import PROBS, batches


def test_flexmatch_curriculum_from_selected_samples():
    policy = FlexMatch(2, num_samples=4, threshold=0.9).train()
    # No sample selected yet: every threshold is 0 (warm-up), all are kept.
    first = policy(torch.tensor([[0.95, 0.05], [0.3, 0.7]]), torch.tensor([0, 1]))
    assert first.weights.tolist() == [1.0, 1.0]
    assert policy.selected.tolist() == [0, -1, -1, -1]
    # Counts: 3 unselected, 1 of class 0, 0 of class 1; warm-up normaliser 3.
    # Status [1/3, 0] -> thresholds 0.9 * (1/3) / (2 - 1/3) = 0.18 and 0.
    second = policy(torch.tensor([[0.15, 0.85], [0.85, 0.15]]), torch.tensor([2, 3]))
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.18, 0.0]))
    assert second.weights.tolist() == [1.0, 1.0]
    assert policy.selected.tolist() == [0, -1, -1, -1]
    policy.eval()
    policy(torch.tensor([[0.99, 0.01]]), torch.tensor([1]))
    assert policy.selected.tolist() == [0, -1, -1, -1]
    with pytest.raises(GeosslInputError, match='num_samples: is 4 but a sample'):
        policy(PROBS, torch.tensor([0, 4]))


@settings(deadline=None, max_examples=40)
@given(classes=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_class_thresholds_rise_with_learning_status(classes, seed):
    policy = FlexMatch(classes, num_samples=48).train()
    for step, logits in enumerate(batches(seed, classes, 4, 12)):
        policy(policy.probabilities(logits), torch.arange(step * 12, (step + 1) * 12))
        # Thresholds rise with learning status, up to the fixed one.
        thresholds = policy.class_thresholds
        assert bool((thresholds <= policy.threshold).all())
        order = policy.learning_status.argsort()
        assert bool((thresholds[order].diff() >= 0).all())
