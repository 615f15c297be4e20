"""The multi-label policies."""

import torch

from geossl.ssl.policies.multilabel import MultiLabelFreeMatch, MultiLabelThreshold
from tests.ssl.policies.common import INDEX


def test_multilabel_threshold_keeps_clear_classes():
    pseudo = MultiLabelThreshold(3)(torch.tensor([[0.8, 0.5, 0.01]]), INDEX[:1])
    assert pseudo.targets.tolist() == [[1.0, 0.0, 0.0]]
    assert pseudo.weights.tolist() == [[1.0, 0.0, 1.0]]


def test_multilabel_freematch_per_class_thresholds():
    policy = MultiLabelFreeMatch(2, ema=0.5).train()
    pseudo = policy(torch.tensor([[0.9, 0.4], [0.55, 0.5]]), INDEX)
    # Confidences [[0.9, 0.6], [0.55, 0.5]]: global 0.5 * 0.5 + 0.5 * 0.6375;
    # classes 0.5 * 0.5 + 0.5 * [0.725, 0.55] = [0.6125, 0.525].
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.56875, 0.4875]))
    assert pseudo.targets.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert pseudo.weights.tolist() == [[1.0, 1.0], [0.0, 1.0]]
