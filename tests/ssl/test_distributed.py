import torch

from geossl.ssl.distributed import (
    gather_across_processes,
    is_distributed,
    mean_across_processes,
)


def test_outside_a_process_group_statistics_are_the_local_ones():
    # Across two processes: tests/ssl/policies/test_init.py.
    assert not is_distributed()
    value = torch.tensor([[1.0, 2.0]])
    assert mean_across_processes(value) is value
    assert gather_across_processes(value) is value
