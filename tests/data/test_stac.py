import json
from datetime import UTC, datetime

import numpy as np
import pystac
import pytest

from geossl.data.scene import SceneDataset
from geossl.data.scene_files import find_scenes
from geossl.data.stac import band_of, is_stac, read_items
from geossl.errors import GeosslInputError
from tests.stac import s2_item, write_scl, write_tiled_bands

BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09']
BANDS += ['B10', 'B11', 'B12']


@pytest.fixture(scope='module')
def catalog(scene_crop, tmp_path_factory):
    """A static catalog of the 18SVG crop twice: as in 2016, and as if from 2023.

    The 2016 item is named the Planetary Computer way (baseline 02.01); the 2023
    one the Earth Search way, its files 1000 DN higher, its offset in raster:bands.
    """
    root = tmp_path_factory.mktemp('stac')
    old = write_tiled_bands(scene_crop, root / 'data' / 'old')
    new = write_tiled_bands(scene_crop, root / 'data' / 'new', add=1000)
    new['SCL'] = write_scl(new['B02'], root / 'data' / 'new' / 'SCL.tif', slice(0, 8))
    catalogue = pystac.Catalog('s2', 'Two scenes of 18SVG')
    catalogue.add_item(s2_item('S2A_MSIL2A_20160112_T18SVG', old, 'pc'))
    later = datetime(2023, 5, 2, 15, 57, 1, tzinfo=UTC)
    catalogue.add_item(
        s2_item('S2B_18SVG_20230502_0_L2A', new, 'earth-search', later, '05.09')
    )
    catalogue.normalize_and_save(
        str(root / 'catalog'), pystac.CatalogType.SELF_CONTAINED
    )
    return root / 'catalog' / 'catalog.json'


def test_assets_are_bands_by_key_or_band_name_in_geotiff_only():
    tiff = pystac.MediaType.COG

    def asset(href='b.tif', media=tiff, **fields):
        return pystac.Asset(href, media_type=media, extra_fields=fields)

    assert band_of('B8A', asset()) == 'B8A'
    assert band_of('nir08', asset()) == 'B8A'
    assert band_of('rededge2', asset()) == 'B06'
    assert band_of('scl', asset()) == 'SCL'
    assert band_of('B2', asset()) == 'B02'
    assert band_of('image', asset(**{'eo:bands': [{'name': 'B11'}]})) == 'B11'
    assert band_of('x', asset(**{'bands': [{'eo:common_name': 'swir22'}]})) == 'B12'
    assert band_of('blue-jp2', asset('b.jp2', pystac.MediaType.JPEG2000)) is None
    three = {'eo:bands': [{'name': 'red'}, {'name': 'green'}, {'name': 'blue'}]}
    assert band_of('visual', asset(**three)) is None
    assert band_of('thumbnail', asset('t.png', pystac.MediaType.PNG)) is None
    assert band_of('red', asset('r.tif', None)) == 'B04'


def test_a_catalog_of_both_namings_gives_per_band_scenes_with_their_metadata(
    catalog,
):
    old, new = find_scenes(catalog)
    assert (old.name, new.name) == (
        'S2A_MSIL2A_20160112_T18SVG',
        'S2B_18SVG_20230502_0_L2A',
    )
    for scene in (old, new):
        assert scene.per_band
        assert list(scene.band_names) == BANDS
        assert scene.shape == (258, 258)
    assert old.mask is None
    assert new.mask.path.name.endswith('_SCL.vrt')
    # The item's time, to the second; not the date in its id.
    assert new.time == datetime(2023, 5, 2, 15, 57, 1, tzinfo=UTC)
    assert (old.cloud_cover, old.reflectance_offset) == (3.5, 0)
    assert new.reflectance_offset == -1000
    assert new.footprint.contains(new.footprint.centroid)


def test_mixed_processing_baselines_are_harmonised_not_refused(catalog):
    chips = SceneDataset(catalog, chip_size=32, stride=32, max_cloud_fraction=1.0)
    index = chips.index
    assert index.groupby('scene')['reflectance_offset'].first().tolist() == [0, -1000]
    assert index.groupby('scene')['scene_cloud_cover'].first().tolist() == [3.5, 3.5]
    assert index['datetime'].dt.year.unique().tolist() == [2016, 2023]
    half = len(chips) // 2
    for position in (0, half // 2, half - 1):
        np.testing.assert_array_equal(
            chips.read_image(position), chips.read_image(position + half)
        )
    # The 2023 scene's cloud (its first 8 rows of 20 m pixels) is in the index.
    cloud = index.set_index('sample_id')['cloud_fraction']
    assert cloud['S2B_18SVG_20230502_0_L2A/r0c0'] == 0.5
    assert cloud['S2B_18SVG_20230502_0_L2A/r32c0'] == 0
    assert np.isnan(cloud['S2A_MSIL2A_20160112_T18SVG/r0c0'])


def test_item_collections_and_single_items_are_sources(catalog, tmp_path):
    items = read_items(str(catalog))
    assert [len(item.assets) for item in items] == [14, 15]
    collection = tmp_path / 'items.json'
    collection.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    assert is_stac(collection)
    assert [s.name for s in find_scenes(collection)] == [i.id for i in items]
    single = tmp_path / 'one' / 'item.json'
    single.parent.mkdir()
    single.write_text(json.dumps(items[1].to_dict()))
    (scene,) = find_scenes(str(single))
    assert scene.name == items[1].id


def test_bad_stac_sources_are_one_line_and_leave_nothing(
    catalog, tmp_path, monkeypatch
):
    monkeypatch.setenv('GEOSSL_CACHE_DIR', str(tmp_path / 'cache'))
    (item, _) = read_items(str(catalog))
    item.assets['B04'].href = str(tmp_path / 'missing' / 'B04.tif')
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(item.to_dict()))
    with pytest.raises(GeosslInputError, match=r'asset B04 \(.*B04.tif\): cannot be'):
        find_scenes(broken)
    assert not list((tmp_path / 'cache' / 'stac').iterdir())
    for key in [key for key in item.assets if key != 'thumbnail']:
        del item.assets[key]
    broken.write_text(json.dumps(item.to_dict()))
    with pytest.raises(GeosslInputError, match='has no Sentinel-2 band assets in Geo'):
        find_scenes(broken)
    odd = tmp_path / 'odd.json'
    odd.write_text('{"type": "Topology"}')
    with pytest.raises(GeosslInputError, match="type 'Topology', not a STAC Item"):
        find_scenes(odd)
    empty = tmp_path / 'empty.json'
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(GeosslInputError, match='holds no STAC items'):
        find_scenes(empty)
