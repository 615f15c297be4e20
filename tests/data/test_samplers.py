import pytest
import torch

from geossl.data.samplers import ResumableSampler


def _stream(sampler: ResumableSampler, epochs: int) -> list[int]:
    return [index for _ in range(epochs) for index in sampler]


@pytest.mark.parametrize(
    ('num_items', 'num_samples', 'weights'),
    [(10, 10, None), (10, 4, None), (3, 8, None), (4, 6, torch.tensor([1, 1, 1, 9.0]))],
    ids=['permutation', 'subset', 'replacement', 'weighted'],
)
def test_a_sampler_started_anywhere_continues_the_same_stream(
    num_items, num_samples, weights
):
    whole = _stream(ResumableSampler(num_items, num_samples, 7, weights), 3)
    assert len(whole) == 3 * num_samples
    for start in (1, num_samples - 1, num_samples, num_samples + 2):
        resumed = ResumableSampler(num_items, num_samples, 7, weights)
        resumed.position = start
        # The first iteration ends with the epoch it started in.
        first = list(resumed)
        assert len(first) == num_samples - start % num_samples
        assert (
            first + _stream(resumed, 1)
            == whole[start : start + len(first) + num_samples]
        )


def test_draw_rules():
    permutation = list(ResumableSampler(10, 10, 0))
    assert sorted(permutation) == list(range(10))
    subset = list(ResumableSampler(10, 4, 0))
    assert len(set(subset)) == 4
    with_replacement = list(ResumableSampler(3, 30, 0))
    assert set(with_replacement) == {0, 1, 2}
    weighted = list(ResumableSampler(2, 200, 0, torch.tensor([0.0, 1.0])))
    assert set(weighted) == {1}
    assert len(ResumableSampler(3, 30, 0)) == 30


def test_epochs_and_seeds_draw_differently():
    sampler = ResumableSampler(50, 50, 0)
    first, second = list(sampler), list(sampler)
    assert first != second
    assert list(ResumableSampler(50, 50, 1)) != first
    assert list(ResumableSampler(50, 50, 0)) == first


@pytest.mark.parametrize('start', [0, 3, 6])
def test_processes_deal_out_the_one_stream(start):
    whole = ResumableSampler(10, 12, 5)
    whole.position = start
    expected = list(whole)
    shares = []
    for rank in (0, 1):
        share = ResumableSampler(10, 12, 5, processes=2, rank=rank)
        share.position = start
        shares.append(list(share))
        assert len(share) == 6
    # Global draw p falls to process p % 2; the first one here is number start.
    dealt = [None] * len(expected)
    dealt[0::2] = shares[start % 2]
    dealt[1::2] = shares[1 - start % 2]
    assert dealt == expected
