import numpy as np
import pandas as pd
import torch

from geossl.data.geodesy import EARTH_RADIUS_KM
from geossl.ssl.neighbours import NeighbourMemory


def _clusters():
    """Three clusters of four tiles, 1 km apart inside, 100 km between; one unlocated."""
    km = 1 / 111.32  # a kilometre of latitude, in degrees
    lat = [45 + c * 100 * km + i * km for c in range(3) for i in range(4)]
    lon = [10.0] * 12
    return torch.tensor([*lon, float('nan')]), torch.tensor([*lat, float('nan')])


def test_links_stay_within_the_radius_and_never_reach_back_to_the_tile():
    lon, lat = _clusters()
    memory = NeighbourMemory(13, 3, neighbours=5, radius_km=5)
    pool = torch.tensor([0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11])  # 3 held out
    memory.connect(lon, lat, pool)
    for tile in range(12):
        links = memory.links[tile]
        found = links[links >= 0]
        assert tile not in found.tolist()
        assert 3 not in found.tolist()  # not in the pool
        # Every neighbour is in the tile's own cluster, and all of them are found.
        assert set((found // 4).tolist()) == {tile // 4}
        expected = {t for t in range(4 * (tile // 4), 4 * (tile // 4) + 4)} - {tile, 3}
        assert set(found.tolist()) == expected
    assert (memory.links[12] == -1).all()  # no location, no neighbours


def test_the_radius_is_a_great_circle_distance():
    # Two tiles 4.9 and 5.1 km apart along the equator: only the first is linked.
    degrees = torch.tensor([4.9, 5.1]) / EARTH_RADIUS_KM * 180 / torch.pi
    lon = torch.tensor([0.0, degrees[0], 0.0, degrees[1]])
    lat = torch.tensor([0.0, 0.0, 30.0, 30.0])
    lon[2:] = lon[2:] + 90  # far from the first pair
    lon[3] = lon[2] + degrees[1] / np.cos(np.radians(30))
    memory = NeighbourMemory(4, 2, neighbours=1, radius_km=5)
    memory.connect(lon, lat, torch.arange(4))
    assert memory.links[:, 0].tolist() == [1, 0, -1, -1]


def test_the_prior_counts_known_neighbours_and_labels_are_kept():
    lon, lat = _clusters()
    memory = NeighbourMemory(13, 3, neighbours=3, radius_km=5)
    memory.connect(lon, lat, torch.arange(12))
    flat = torch.full((1, 3), 1 / 3)
    torch.testing.assert_close(memory.log_prior(torch.tensor([0])).exp(), flat)
    memory.remember(torch.tensor([1]), torch.tensor([[0.0, 1.0, 0.0]]), labels=True)
    memory.remember(torch.tensor([2]), torch.tensor([[0.2, 0.2, 0.6]]))
    # A prediction never replaces a label; a newer one replaces the older.
    memory.remember(torch.tensor([1, 2]), torch.tensor([[1.0, 0, 0], [0.6, 0.2, 0.2]]))
    prior = memory.log_prior(torch.tensor([0, 12])).exp()
    # Tile 0 has two known neighbours of three, tiles 1 and 2: each class counts
    # their probabilities, plus one.
    expected = torch.tensor([1 + 0.6, 1 + 1.0 + 0.2, 1 + 0.2]) / (2 + 3)
    torch.testing.assert_close(prior[0], expected, atol=1 / 255, rtol=0)
    torch.testing.assert_close(prior[1:], flat)  # no location, no neighbours
    assert memory.memory.dtype == torch.uint8
    state = memory.state_dict()
    assert {'links', 'memory', 'known', 'labelled'} <= set(state)


def test_a_multilabel_prior_is_each_class_log_odds():
    lon, lat = _clusters()
    memory = NeighbourMemory(13, 2, neighbours=1, radius_km=5)
    memory.connect(lon, lat, torch.arange(12))
    memory.remember(memory.links[0], torch.tensor([[1.0, 0.0]]), labels=True)
    # One neighbour with class 0 and without class 1: odds of 2 to 1 and 1 to 2.
    prior = memory.log_prior(torch.tensor([0]), multilabel=True)
    torch.testing.assert_close(prior, torch.tensor([[2.0, 0.5]]).log())


def test_eurosat_neighbours_carry_the_class_as_location_knn_does(shared_data):
    # The mechanism on the real places: with the training tiles' labels remembered,
    # the neighbours' prior alone names the class of held-out tiles about as well as
    # the nearest training tile does (0.80 on this split).
    table = pd.read_parquet(
        shared_data / 'eurosat-locations' / 'eurosat_metadata.parquet'
    )
    labels = torch.as_tensor(pd.factorize(table['label_name'])[0])
    order = torch.as_tensor(np.random.default_rng(0).permutation(len(table)))
    test, train = order[:5400], order[5400:]
    memory = NeighbourMemory(len(table), 10, neighbours=1, radius_km=20)
    memory.connect(
        torch.as_tensor(table['lon'].to_numpy()),
        torch.as_tensor(table['lat'].to_numpy()),
        train,
    )
    one_hot = torch.nn.functional.one_hot(labels[train], 10).float()
    memory.remember(train, one_hot, labels=True)
    prior = memory.log_prior(test)
    covered = memory.links[test, 0] >= 0
    accuracy = (prior[covered].argmax(1) == labels[test][covered]).float().mean()
    assert covered.float().mean() > 0.9
    assert accuracy > 0.75


def test_a_pool_smaller_than_the_neighbours_asked_for_links_what_there_is():
    lon, lat = torch.tensor([10.0, 10.0, 10.0]), torch.tensor([45.0, 45.001, 45.002])
    memory = NeighbourMemory(3, 2, neighbours=5, radius_km=5)
    memory.connect(lon, lat, torch.tensor([0, 1]))
    assert memory.links[:, 0].tolist() == [1, 0, 1]
    assert (memory.links[:, 1:] == -1).all()
