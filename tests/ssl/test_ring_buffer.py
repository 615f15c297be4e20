import torch

from geossl.ssl.ring_buffer import RingBuffer


def _rows(*values: float) -> torch.Tensor:
    return torch.tensor(values)[:, None]


def test_ring_buffer_overwrites_the_oldest_rows():
    ring = RingBuffer(3, 1)
    assert not ring.full
    assert ring.stored().shape == (0, 1)
    ring.push(_rows(1, 2))
    assert ring.stored().flatten().tolist() == [1, 2]
    ring.push(_rows(3, 4))  # 4 wraps round onto slot 0
    assert ring.full
    assert ring.stored().flatten().tolist() == [4, 2, 3]
    ring.push(_rows(5))
    assert ring.stored().flatten().tolist() == [4, 5, 3]
    assert ring.pushed.item() == 5


def test_ring_buffer_keeps_the_last_rows_of_a_push_larger_than_itself():
    ring = RingBuffer(3, 1)
    ring.push(_rows(1))
    ring.push(_rows(2, 3, 4, 5, 6))  # 4, 5, 6 stay, in the slots they reach
    assert ring.pushed.item() == 6
    assert ring.stored().flatten().tolist() == [4, 5, 6]
    ring.push(_rows(7))
    assert ring.stored().flatten().tolist() == [7, 5, 6]


def test_ring_buffer_state_round_trips():
    ring = RingBuffer(2, 2)
    ring.push(torch.ones(1, 2, requires_grad=True))
    restored = RingBuffer(2, 2)
    restored.load_state_dict(ring.state_dict())
    assert torch.equal(restored.stored(), torch.ones(1, 2))
    assert not restored.stored().requires_grad
