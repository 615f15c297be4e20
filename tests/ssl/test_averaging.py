import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.ssl.averaging import check_momentum, update_ema_


def test_update_keeps_the_momentum_share_of_the_average_in_place():
    average = torch.tensor([1.0, 0.0])
    returned = update_ema_(average, torch.tensor([0.0, 1.0]), momentum=0.75)
    assert returned is average
    torch.testing.assert_close(average, torch.tensor([0.75, 0.25]))
    update_ema_(average, torch.tensor([0.0, 1.0]), momentum=0.0)
    torch.testing.assert_close(average, torch.tensor([0.0, 1.0]))


def test_a_momentum_outside_zero_to_one_is_refused():
    check_momentum(0.0)
    with pytest.raises(GeosslInputError, match=r'ema: is 1\.0; it must be in \[0, 1\)'):
        check_momentum(1.0)
    with pytest.raises(GeosslInputError, match=r'decay: is -0\.1'):
        check_momentum(-0.1, 'decay')
