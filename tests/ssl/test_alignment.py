import torch

from geossl.ssl.alignment import align_distribution


def test_over_predicted_classes_lose_weight_and_rows_stay_distributions():
    probs = torch.tensor([[0.8, 0.2], [0.6, 0.4]])
    # Predicted [0.7, 0.3]: [0.8 / 0.7, 0.2 / 0.3] = [1.1429, 0.6667] -> [0.6316, 0.3684].
    aligned = align_distribution(probs, torch.tensor([0.7, 0.3]))
    torch.testing.assert_close(
        aligned, torch.tensor([[0.6316, 0.3684], [0.3913, 0.6087]]), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(aligned.sum(dim=1), torch.ones(2))


def test_a_balanced_prediction_leaves_probabilities_as_they_are():
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    torch.testing.assert_close(
        align_distribution(probs, torch.full((3,), 1 / 3)), probs
    )


def test_a_class_never_predicted_stays_finite():
    aligned = align_distribution(torch.tensor([[0.5, 0.5]]), torch.tensor([1.0, 0.0]))
    assert bool(aligned.isfinite().all())
    assert aligned[0, 1] > 0.99
