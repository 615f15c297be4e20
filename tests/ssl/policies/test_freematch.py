"""FreeMatch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geossl.ssl.policies.freematch import FreeMatch
from tests.ssl.policies.common import INDEX, PROBS, batches


def test_freematch_thresholds_and_fairness():
    policy = FreeMatch(2, ema=0.5).train()
    pseudo = policy(PROBS, INDEX)
    # Global: 0.5 * 1/2 + 0.5 * mean(0.9, 0.6) = 0.625.
    assert policy.global_threshold.item() == pytest.approx(0.625)
    # Class probabilities: 0.5 * [0.5, 0.5] + 0.5 * [0.75, 0.25].
    torch.testing.assert_close(policy.class_probs, torch.tensor([0.625, 0.375]))
    # Both predicted class 0: histogram 0.5 * [0.5, 0.5] + 0.5 * [1, 0].
    torch.testing.assert_close(policy.label_histogram, torch.tensor([0.75, 0.25]))
    # Class thresholds 0.625 * [0.625, 0.375] / 0.625: sample 2 (0.6 < 0.625) drops.
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.625, 0.375]))
    assert pseudo.weights.tolist() == [1.0, 0.0]
    # Fairness on one kept strong view predicting class 0 (p = 0.8808):
    # expected = SumNorm([0.625 / 0.75, 0.375 / 0.25]) = [0.3571, 0.6429];
    # observed = SumNorm([0.8808 / 1, 0.1192 * 0]) = [1, 0];
    # loss = 0.3571 * log(1) + 0.6429 * log(1e-12) = -17.763.
    fairness = policy.fairness_loss(torch.tensor([[2.0, 0.0]]))
    assert fairness.item() == pytest.approx(-17.763, abs=1e-3)


@settings(deadline=None, max_examples=40)
@given(classes=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_class_thresholds_scale_the_global_one_by_each_class_share(classes, seed):
    policy = FreeMatch(classes).train()
    for step, logits in enumerate(batches(seed, classes, 4, 12)):
        policy(policy.probabilities(logits), torch.arange(step * 12, (step + 1) * 12))
        # The global threshold scaled by each class's share, at most 1x.
        local = policy.class_thresholds
        assert bool((local <= policy.global_threshold + 1e-6).all())
        order = policy.class_probs.argsort()
        assert bool((local[order].diff() >= -1e-6).all())
