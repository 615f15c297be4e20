import numpy as np
import rasterio
import shapely

from geossl.cli import main
from geossl.inference.quicklook import stretch
from tests.conftest import write_raster
from tests.inference.conftest import ORIGIN, region_file


def test_each_band_is_stretched_from_its_2nd_to_its_98th_percentile():
    band = np.concatenate([np.zeros(50), np.arange(1, 101)]).astype(np.float32)
    shown = stretch(band)
    assert (shown[:50] == 0).all()  # no data stays black
    low, high = np.percentile(np.arange(1, 101), [2, 98])
    np.testing.assert_allclose(
        shown[50:], np.clip((band[50:] - low) / (high - low), 0, 1)
    )
    assert (stretch(np.zeros(4)) == 0).all()


def test_a_quicklook_shows_the_maps_extent_with_the_region_outlined(
    scene_and_model, tmp_path
):
    scene_path, checkpoint = scene_and_model
    x, y = ORIGIN
    roi = region_file(
        tmp_path / 'roi.gpkg', shapely.box(x + 300, y - 400, x + 500, y - 200)
    )
    pictures = {}
    for crop in ('false', 'true'):
        output = tmp_path / crop / 'map.tif'
        args = ['map', str(checkpoint), str(scene_path), '-o', str(output)]
        args += ['--roi', str(roi), '--crop', crop, '--quicklook', 'true']
        assert main(args) == 0
        with rasterio.open(output.with_suffix('.png')) as png:
            pictures[crop] = png.read()
    # Both panels and the legend fit: the cropped map's panels are as tall as wide.
    assert pictures['true'].shape[1:] == pictures['false'].shape[1:] == (680, 1200)
    # The outline is drawn in black over the true-colour panel.
    black = (pictures['false'][:3] < 30).all(axis=0)
    assert black[:, :600].sum() > 100


def test_masked_pixels_are_shaded_on_the_true_colour(scene_and_model, tmp_path):
    scene_path, checkpoint = scene_and_model
    scl = np.full((1, 35, 45), 4, dtype=np.uint8)
    scl[0, :, :20] = 9  # cloud over the western 40 of 90 columns
    mask = write_raster(tmp_path / 'scl.tif', scl, res=20.0)
    output = tmp_path / 'map.tif'
    args = ['map', str(checkpoint), str(scene_path), '-o', str(output)]
    assert main([*args, '--mask', str(mask), '--quicklook', 'true']) == 0
    with rasterio.open(output.with_suffix('.png')) as png:
        red, green, blue = png.read()[:3].astype(int)
    magenta = (red - green > 100) & (blue - green > 100)
    left_panel = magenta[:, :600]
    # The western part of the true-colour panel, and the legend's patch.
    assert left_panel.sum() > 10_000
    assert magenta[:, 600:].sum() < 2_000
