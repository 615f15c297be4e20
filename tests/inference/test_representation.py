"""Weighted kNN, the linear probe, and encoders loaded from both kinds of checkpoint."""

import math

import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.inference.representation import (
    check_bands,
    embed_samples,
    knn_accuracy,
    linear_probe_accuracy,
    load_encoder,
    resolve_device,
    score_representation,
)
from geossl.tasks.pretrain import SimSiam
from tests.inference.conftest import save_checkpoint


def _clusters(per_class: int, classes: int = 3, seed: int = 0):
    """Tight clusters around orthogonal directions: any fair classifier is exact."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.eye(8)[:classes] * 10
    features = centres[labels] + 0.1 * torch.randn(len(labels), 8, generator=generator)
    return features, labels


def test_separable_features_are_classified_exactly():
    train, train_labels = _clusters(20)
    test, test_labels = _clusters(10, seed=1)
    scores = score_representation(train, train_labels, test, test_labels, 3)
    assert scores == {
        'knn_top1': 1.0,
        'knn_top5': 1.0,
        'linear_top1': 1.0,
        'linear_top5': 1.0,
    }


def test_knn_votes_are_weighted_by_similarity():
    # Two neighbours of class 0 at cosine 0.6, one of class 1 at cosine 1.0: by
    # count class 0 wins; by exp(similarity / 0.1), class 1 (e^10 > 2 e^6).
    query = torch.tensor([[1.0, 0.0]])
    bank = torch.tensor([[0.6, 0.8], [0.6, -0.8], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    top1, top5 = knn_accuracy(bank, labels, query, torch.tensor([1]), 2, k=3)
    assert (top1, top5) == (1.0, 1.0)
    # A high temperature flattens the weights back towards a count.
    top1, _ = knn_accuracy(
        bank, labels, query, torch.tensor([1]), 2, k=3, temperature=100.0
    )
    assert top1 == 0.0
    # Only the k nearest vote: with k=1 the nearest alone decides.
    assert knn_accuracy(bank, labels, query, torch.tensor([1]), 2, k=1)[0] == 1.0


def test_k_larger_than_the_bank_uses_the_whole_bank():
    train, labels = _clusters(2)
    test, test_labels = _clusters(2, seed=1)
    assert knn_accuracy(train, labels, test, test_labels, 3, k=200)[0] == 1.0


def test_top5_counts_a_class_among_the_five_best():
    # Seven classes; the probe's second choice is right for one test tile.
    train, labels = _clusters(5, classes=7)
    test = train[labels == 1][:1] * 0.5 + train[labels == 2][:1] * 0.5
    test = test + torch.tensor([[0, 0.3, 0, 0, 0, 0, 0, 0]])  # nearer class 1
    top1, top5 = linear_probe_accuracy(train, labels, test, torch.tensor([2]))
    assert (top1, top5) == (0.0, 1.0)


def test_the_probe_ranks_only_the_classes_it_saw():
    # Classes 0 and 2 in training (class 1 never): columns map back to labels.
    train, labels = _clusters(10)
    kept = labels != 1
    test, test_labels = _clusters(5, seed=1)
    wanted = test_labels == 2
    top1, _ = linear_probe_accuracy(
        train[kept], labels[kept], test[wanted], test_labels[wanted]
    )
    assert top1 == 1.0


def test_a_pretraining_checkpoint_loads_as_its_method(tmp_path):
    torch.manual_seed(0)
    task = SimSiam(model='test_resnet', in_channels=4, chip_size=16)
    task.views.set_statistics(torch.full((4,), 100.0), torch.full((4,), 20.0))
    path = tmp_path / 'simsiam.ckpt'
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    encoder = load_encoder(path)
    assert isinstance(encoder, SimSiam)
    assert not encoder.training
    assert torch.equal(encoder.views.mean.flatten(), torch.full((4,), 100.0))
    images = torch.randn(2, 4, 16, 16)
    expected = task.eval().embed(images)
    embedded = encoder.embed(images)
    assert embedded.keys() == {'features', 'projection'}
    for name in expected:
        assert torch.equal(embedded[name], expected[name])


def test_a_fit_checkpoint_embeds_with_its_student(tmp_path):
    path = save_checkpoint(
        tmp_path / 'fit.ckpt',
        num_classes=2,
        in_channels=4,
        chip_size=16,
        model='test_resnet',
        data={
            'band_names': ['B02', 'B03', 'B04', 'B08'],
            'class_names': ['water', 'land'],
        },
    )
    encoder = load_encoder(path)
    images = torch.randn(3, 4, 16, 16)
    embedded = encoder.embed(images)
    assert embedded.keys() == {'features'}
    assert torch.equal(embedded['features'], encoder.student.features(images)[0])
    # Data is checked against the bands the model was trained on.
    check_bands(encoder, ['B02', 'B03', 'B04', 'B08'], 'tiles')
    with pytest.raises(GeosslInputError, match='has 3 bands but the model was'):
        check_bands(encoder, ['B02', 'B03', 'B04'], 'tiles')


def test_an_unknown_method_is_refused(tmp_path):
    path = tmp_path / 'odd.ckpt'
    torch.save({'hyper_parameters': {'method': 'dino'}, 'state_dict': {}}, path)
    with pytest.raises(GeosslInputError, match="unknown pretraining method 'dino'"):
        load_encoder(path)


def test_samples_are_embedded_in_the_order_asked(eurosat_ms):
    torch.manual_seed(0)
    task = SimSiam(model='test_resnet', in_channels=13, chip_size=64).eval()
    positions = [7, 3, 50]
    embedded = embed_samples(task, eurosat_ms, positions, batch_size=2)['features']
    assert embedded.shape == (3, task.backbone.num_features)
    alone = torch.cat(
        [embed_samples(task, eurosat_ms, [p])['features'] for p in positions]
    )
    # float32 convolutions round differently with the batch's size and the CPU's
    # kernels, so the batched and the lone features agree only relative to their
    # scale (ReLU outputs of up to hundreds); the order is each row's nearest tile.
    scale = float(alone.abs().max())
    torch.testing.assert_close(embedded, alone, rtol=1e-4, atol=1e-4 * scale)
    assert torch.cdist(embedded, alone).argmin(dim=1).tolist() == [0, 1, 2]
    assert not math.isclose(
        float(embedded[0].sum()), float(embedded[1].sum()), rel_tol=1e-3
    )


def test_device_names():
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert resolve_device('auto').type == expected
    assert resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(GeosslInputError, match="--device: is 'gpu0', not one of"):
        resolve_device('gpu0')
    if not torch.cuda.is_available():
        with pytest.raises(GeosslInputError, match='no CUDA GPU is visible'):
            resolve_device('cuda:0')
