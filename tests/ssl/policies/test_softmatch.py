"""SoftMatch."""

import pytest

from geossl.ssl.policies.softmatch import SoftMatch
from tests.ssl.policies.common import INDEX, PROBS


def test_softmatch_weights_after_uniform_alignment():
    policy = SoftMatch(2, ema=0.5).train()
    pseudo = policy(PROBS, INDEX)
    # Class probabilities 0.5 * [0.5, 0.5] + 0.5 * [0.75, 0.25] = [0.625, 0.375];
    # aligned rows: SumNorm([0.9 / 0.625, 0.1 / 0.375]) = [0.8438, 0.1562] and
    # SumNorm([0.6 / 0.625, 0.4 / 0.375]) = [0.4737, 0.5263]: sample 2 flips to 1.
    assert pseudo.targets.tolist() == [0, 1]
    # Confidence mean 0.5 * 0.5 + 0.5 * 0.6850 = 0.5925; variance (unbiased)
    # 0.5 * 1 + 0.5 * 0.05038 = 0.5252; weight of sample 2:
    # exp(-(0.5263 - 0.5925)^2 / (2 * 0.5252 / 2^2)) = 0.9834.
    assert policy.confidence_mean.item() == pytest.approx(0.5925, abs=1e-4)
    assert policy.confidence_var.item() == pytest.approx(0.5252, abs=1e-4)
    assert pseudo.weights.tolist() == pytest.approx([1.0, 0.9834], abs=1e-4)
