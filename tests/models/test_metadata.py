import datetime as dt
import math
import random

import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.models.metadata import (
    MetadataEncoder,
    civil_dates,
    sinusoidal_location,
    spherical_harmonics,
    time_features,
)


def _unix(*args):
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_civil_dates_match_the_calendar():
    rng = random.Random(0)
    times = [rng.randint(-2_000_000_000, 4_000_000_000) for _ in range(5000)]
    times += [_unix(2000, 2, 29), _unix(1900, 3, 1), _unix(2016, 12, 31, 23, 59)]
    year, day, seconds = civil_dates(torch.tensor(times, dtype=torch.float64))
    for time, y, d, s in zip(times, year, day, seconds, strict=True):
        expected = dt.datetime.fromtimestamp(time, dt.UTC)
        assert (int(y), int(d) + 1) == (expected.year, expected.timetuple().tm_yday)
        assert int(s) == expected.hour * 3600 + expected.minute * 60 + expected.second


def test_day_of_year_is_cyclic_with_leap_years():
    times = torch.tensor(
        [_unix(2017, 1, 1), _unix(2016, 3, 1), _unix(2017, 3, 1), _unix(2016, 7, 2)],
        dtype=torch.float64,
    )
    features = time_features(times, year=True, time_of_day=True)
    angles = torch.atan2(features[:, 0], features[:, 1]) % (2 * math.pi)
    fractions = (angles / (2 * math.pi)).tolist()
    assert fractions == pytest.approx([0.0, 60 / 366, 59 / 365, 183 / 366], abs=1e-9)
    assert features[:, 2].tolist() == pytest.approx([-0.3, -0.4, -0.3, -0.4])
    # Midnight: time of day (sin, cos) = (0, 1).
    assert features[:, 3:].flatten().tolist() == pytest.approx([0.0, 1.0] * 4, abs=1e-9)


@pytest.mark.parametrize('encode', [sinusoidal_location, spherical_harmonics])
def test_location_has_no_seam_at_the_antimeridian_or_the_poles(encode):
    lon = torch.tensor([179.999, -179.999, 0.0, 120.0, -75.6])
    lat = torch.tensor([-16.0, -16.0, 90.0, 90.0, 37.7], dtype=torch.float32)
    features = encode(lon, lat)
    assert (features[0] - features[1]).abs().max() < 1e-3
    assert (features[2] - features[3]).abs().max() < 1e-5
    assert (features[0] - features[4]).abs().max() > 0.1


def test_spherical_harmonics_keep_the_addition_theorem_to_high_degrees():
    # For real orthonormal harmonics, the squares of each degree's 2l + 1 functions
    # sum to (2l + 1) / (4 pi) everywhere: a check of every normalisation.
    lon = torch.tensor([-179.0, -75.6, 0.0, 13.7, 120.0], dtype=torch.float64)
    lat = torch.tensor([-89.0, 37.7, 0.0, 52.5, 80.0], dtype=torch.float64)
    degrees = 30
    features = spherical_harmonics(lon, lat, degrees)
    assert features.isfinite().all()
    for degree in range(degrees):
        block = features[:, degree**2 : (degree + 1) ** 2]
        expected = torch.full(
            (5,), (2 * degree + 1) / (4 * math.pi), dtype=torch.float64
        )
        torch.testing.assert_close(block.pow(2).sum(dim=1), expected, rtol=1e-9, atol=0)


def test_spherical_harmonics_low_degrees():
    lon = torch.tensor([10.0, -75.6], dtype=torch.float64)
    lat = torch.tensor([50.0, 37.7], dtype=torch.float64)
    features = spherical_harmonics(lon, lat, degrees=2)
    assert features[:, 0].tolist() == pytest.approx([0.5 / math.sqrt(math.pi)] * 2)
    # Y_1^0 = sqrt(3 / 4 pi) cos(colatitude); Y_1^1 = -sqrt(3 / 4 pi) sin(c) cos(lon)
    # (with the Condon-Shortley phase).
    scale = math.sqrt(3 / (4 * math.pi))
    for row, (lo, la) in enumerate([(10.0, 50.0), (-75.6, 37.7)]):
        lo, la = math.radians(lo), math.radians(la)
        assert features[row, 2] == pytest.approx(scale * math.sin(la))
        assert features[row, 3] == pytest.approx(-scale * math.cos(la) * math.cos(lo))
        assert features[row, 1] == pytest.approx(-scale * math.cos(la) * math.sin(lo))


def test_missing_values_take_the_learned_embedding_and_never_nan():
    encoder = MetadataEncoder('location+time')
    meta = torch.tensor(
        [
            [10.0, 50.0, 1.45e9],
            [float('nan'), 3.0, 1.45e9],
            [99.0, float('nan'), 1.45e9],
        ]
    )
    mask = torch.tensor(
        [[True, True, True], [False, False, True], [False, False, True]]
    )
    embedding = encoder(meta, mask)
    assert torch.isfinite(embedding).all()
    torch.testing.assert_close(embedding[1], embedding[2])
    assert not torch.allclose(embedding[0], embedding[1])
    embedding.sum().backward()
    assert encoder.missing_location.grad.abs().sum() > 0
    assert encoder.missing_time.grad.abs().sum() == 0


def test_ablations_ignore_what_they_leave_out():
    meta = torch.tensor(
        [[10.0, 50.0, 1.45e9], [10.0, 50.0, 1.46e9], [-75.0, 37.0, 1.45e9]]
    )
    mask = torch.ones(3, 3, dtype=torch.bool)
    location = MetadataEncoder('location')(meta, mask)
    torch.testing.assert_close(location[0], location[1])
    time = MetadataEncoder('time')(meta, mask)
    torch.testing.assert_close(time[0], time[2])
    none = MetadataEncoder('none')(meta, mask)
    assert (none == none[0]).all()
    harmonics = MetadataEncoder('location', location_encoding='harmonics')(meta, mask)
    assert harmonics.shape == (3, 128)


def test_bad_metadata():
    encoder = MetadataEncoder()
    with pytest.raises(GeosslInputError, match=r'meta: has shape \(2, 2\)'):
        encoder(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(GeosslInputError, match="metadata: is 'place'"):
        MetadataEncoder('place')


#: The file torch.hub caches SatCLIP_Weights.SATCLIP_VIT16_L40 under.
SATCLIP_FILE = 'satclip-vit16-l40.ckpt'


@pytest.fixture
def satclip_cache(tmp_path, monkeypatch):
    """torch.hub's cache holding a SatCLIP release as its real file is laid out.

    A Lightning checkpoint of the whole CLIP model, the location encoder under
    ``model.location.``, random values: the real get_weight -> get_state_dict
    path reads it, as TorchGeo's own ``satclip()`` does.
    """
    from torchgeo.models import SatCLIP

    from geossl.models.metadata import SATCLIP_SIZES

    torch.manual_seed(0)
    encoder = SatCLIP(**SATCLIP_SIZES)
    state = {f'model.location.{k}': v for k, v in encoder.state_dict().items()}
    state['model.visual.conv1.weight'] = torch.zeros(2)  # the image side, unread
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    torch.save({'state_dict': state, 'epoch': 3}, cache / SATCLIP_FILE)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return cache


def _satclip_task(eurosat_ms, **options):
    from tests.tasks.conftest import task_for

    return task_for(
        eurosat_ms,
        teacher={'location_encoding': 'satclip'} | options,
    )


def test_the_teacher_encodes_location_with_satclips_pretrained_encoder(
    satclip_cache, eurosat_ms
):
    from torchgeo.models import SatCLIP_Weights, satclip

    task = _satclip_task(eurosat_ms)
    encoder = task.teacher.encoder
    reference = satclip(SatCLIP_Weights.SATCLIP_VIT16_L40)
    coordinates = torch.tensor([[-74.0, 40.7], [13.4, 52.5], [151.2, -33.9]])
    with torch.no_grad():
        expected = reference(coordinates)
        assert torch.equal(encoder.satclip(coordinates), expected)
        # EuroSAT has no dates: the teacher sees location only. Where a tile has
        # no location, the learned "missing" vector takes SatCLIP's place.
        assert encoder.parts == 'location'
        meta = torch.cat([coordinates, torch.zeros(3, 1)], dim=1)
        mask = torch.tensor([[True, True, False]] * 2 + [[False, False, False]])
        features = torch.cat([expected[:2], encoder.missing_location[None]])
        assert torch.allclose(
            encoder(meta, mask),
            encoder.mlp(torch.cat([torch.ones(3, 1), features], dim=1)),
        )
    # Frozen by default: not trained, and no dropout while the teacher trains.
    task.train()
    assert not encoder.satclip.training
    assert not any(p.requires_grad for p in encoder.satclip.parameters())
    trained = {
        id(p)
        for g in task.configure_optimizers()['optimizer'].param_groups
        for p in g['params']
    }
    assert not any(id(p) in trained for p in encoder.satclip.parameters())


def test_satclip_can_be_fine_tuned_with_the_teacher(satclip_cache, eurosat_ms):
    task = _satclip_task(eurosat_ms, freeze_location_encoder=False).train()
    encoder = task.teacher.encoder
    assert encoder.satclip.training
    meta = torch.tensor([[13.4, 52.5, 0.0]])
    encoder(meta, torch.tensor([[True, True, False]])).sum().backward()
    gradients = [p.grad for p in encoder.satclip.parameters()]
    assert all(g is not None for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)


def test_fit_with_satclip_and_map_without_its_file(
    satclip_cache, shared_data, tmp_path
):
    from geossl.inference.checkpoint import load_task
    from tests.conftest import fit_one_step

    checkpoint = fit_one_step(
        shared_data,
        tmp_path,
        *['--model.teacher.location_encoding', 'satclip'],
    )
    trained = torch.load(checkpoint, weights_only=True)['state_dict']
    # The checkpoint holds SatCLIP's weights: mapping needs no download.
    (satclip_cache / SATCLIP_FILE).unlink()
    task = load_task(checkpoint)
    key = 'teacher.encoder.satclip.nnet.last_layer.weight'
    assert torch.equal(task.state_dict()[key], trained[key])


def test_satclip_weights_without_a_location_encoder_are_refused(
    satclip_cache, eurosat_ms
):
    torch.save(
        {'state_dict': {'model.visual.w': torch.zeros(1)}}, satclip_cache / SATCLIP_FILE
    )
    with pytest.raises(GeosslInputError, match='holds no location encoder'):
        _satclip_task(eurosat_ms)
