import geopandas as gpd
import numpy as np
import rasterio
import shapely

from geossl.cli import main
from geossl.data.scene_files import find_scenes
from geossl.inference.checkpoint import load_task
from geossl.inference.map_writer import NODATA_CLASS
from geossl.inference.region import RegionOfInterest
from geossl.inference.scene_mapper import SceneMapper
from tests.inference.conftest import ORIGIN, assert_same_classes, region_file


def _map(checkpoint, scene_path, output, **options):
    mapper = SceneMapper(load_task(checkpoint), stride=6, batch_size=5, progress=False)
    (scene,) = find_scenes(scene_path)
    return mapper.map_scene(scene, output, probabilities='float16', **options)


def test_a_region_maps_its_pixels_as_the_whole_scene_does(scene_and_model, tmp_path):
    scene_path, checkpoint = scene_and_model
    x, y = ORIGIN
    # A triangle over columns 30-50 and rows 20-35, given in WGS 84; no pixel
    # centre lies on its edges, where reprojection would decide.
    corners = [(x + 302, y - 202), (x + 502, y - 202), (x + 352, y - 352)]
    triangle = shapely.Polygon(corners)
    roi = RegionOfInterest.read(
        region_file(tmp_path / 'roi.gpkg', triangle, 'EPSG:4326')
    )
    whole = _map(checkpoint, scene_path, tmp_path / 'whole.tif')
    part = _map(checkpoint, scene_path, tmp_path / 'roi.tif', region=roi)
    cropped = _map(checkpoint, scene_path, tmp_path / 'crop.tif', region=roi, crop=True)
    # Only the windows that touch the region are read and classified.
    assert part.pixels == cropped.pixels < whole.pixels / 2
    with rasterio.open(tmp_path / 'whole_probabilities.tif') as src:
        expected = src.read()
        profile = src.profile
    with rasterio.open(tmp_path / 'roi.tif') as src:
        assert (src.shape, src.transform, src.crs) == (
            (profile['height'], profile['width']),
            profile['transform'],
            profile['crs'],
        )
        classes = src.read(1)
    inside = ~rasterio.features.geometry_mask(
        [triangle], classes.shape, profile['transform']
    )
    assert 100 < inside.sum() < 200
    assert (classes[~inside] == NODATA_CLASS).all()
    reference = np.where(inside, expected, np.nan)
    winners = np.where(inside, expected.argmax(axis=0), NODATA_CLASS)
    assert_same_classes(classes, winners, reference, margin=1e-3)
    with rasterio.open(tmp_path / 'roi_probabilities.tif') as src:
        probabilities = src.read()
    np.testing.assert_allclose(probabilities[:, inside], expected[:, inside], atol=2e-3)
    assert np.isnan(probabilities[:, ~inside]).all()
    # Cropped: the same pixels on the bounds of the windows that touch the region.
    with rasterio.open(tmp_path / 'crop.tif') as src:
        left = round((src.transform.c - x) / 10)
        top = round((y - src.transform.f) / 10)
        assert (left, top) == (18, 6)
        window = (slice(top, top + src.height), slice(left, left + src.width))
        assert src.shape == (40, 46)
        np.testing.assert_array_equal(src.read(1), classes[window])


def test_a_region_smaller_than_a_window_maps_the_windows_over_it(
    scene_and_model, tmp_path
):
    scene_path, checkpoint = scene_and_model
    x, y = ORIGIN
    square = shapely.box(x + 850, y - 690, x + 870, y - 670)  # the bottom-right corner
    roi = RegionOfInterest.read(region_file(tmp_path / 'roi.geojson', square))
    _map(checkpoint, scene_path, tmp_path / 'crop.tif', region=roi, crop=True)
    with rasterio.open(tmp_path / 'crop.tif') as src:
        assert src.shape == (16, 18)
        assert src.bounds == (x + 720, y - 700, x + 900, y - 540)
        classes = src.read(1)
    assert (classes != NODATA_CLASS).sum() == 4


def test_bad_regions_are_refused_in_one_line_and_nothing_is_written(
    scene_and_model, tmp_path, capsys
):
    scene_path, checkpoint = scene_and_model
    x, y = ORIGIN
    far = region_file(
        tmp_path / 'far.gpkg', shapely.box(x - 5000, y, x - 4000, y + 900)
    )
    points = tmp_path / 'points.gpkg'
    gpd.GeoDataFrame(geometry=[shapely.Point(x + 100, y - 100)], crs=32618).to_file(
        points
    )
    no_crs = tmp_path / 'no_crs.shp'  # a Shapefile without its .prj
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)]).to_file(no_crs)
    (tmp_path / 'broken.gpkg').write_text('not a GeoPackage')
    output = tmp_path / 'out' / 'map.tif'
    args = ['map', str(checkpoint), str(scene_path), '-o', str(output)]
    cases = {
        str(far): 'misses scene scene: the region spans 435000, 4170000, 436000, '
        '4170900 and the scene 440000, 4169300, 440900, 4170000 (EPSG:32618)',
        str(points): 'holds Point geometries; a region must be polygons',
        str(tmp_path / 'missing.gpkg'): 'does not exist',
        str(tmp_path / 'broken.gpkg'): 'cannot be read as a vector file',
    }
    for roi, problem in cases.items():
        assert main([*args, '--roi', roi]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f'geossl: error: {roi}: {problem}'), error
    assert main([*args, '--roi', str(no_crs)]) == 2
    assert capsys.readouterr().err.strip().endswith('has no CRS; save it with one')
    assert main([*args, '--crop', 'true']) == 2
    assert capsys.readouterr().err.strip() == (
        'geossl: error: crop: crops to the ROI; give one with --roi'
    )
    assert not output.parent.exists() or not any(output.parent.iterdir())
