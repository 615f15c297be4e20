import warnings

import numpy as np
import pytest
import rasterio

from geossl.data.folder import ImageFolderDataset
from geossl.data.index import index_source, read_index, write_index
from geossl.data.reflectance import PRODUCT_BANDS, declared_offset
from geossl.data.scene import SceneDataset
from geossl.data.scene_files import find_scenes
from geossl.errors import GeosslInputError
from tests.conftest import random_chip, write_raster

#: Surface values of one patch, as a product before baseline 04.00 stores them.
SURFACE = random_chip(bands=4, size=16, seed=3) // 4 + 1
NAMES = ['B02', 'B03', 'B04', 'B08']


def _product_metadata(path, level='2A', offset=-1000, bands=PRODUCT_BANDS):
    """Product metadata as ESA writes it: namespaced root, offsets by band_id."""
    if level == '2A':
        root, item, listing = (
            'Level-2A_User_Product',
            'BOA_ADD_OFFSET',
            ('BOA_ADD_OFFSET_VALUES_LIST'),
        )
    else:
        root, item, listing = (
            'Level-1C_User_Product',
            'RADIO_ADD_OFFSET',
            ('Radiometric_Offset_List'),
        )
    offsets = ''.join(
        f'<{item} band_id="{PRODUCT_BANDS.index(band)}">{offset}</{item}>'
        for band in bands
    )
    listed = f'<{listing}>{offsets}</{listing}>' if offset is not None else ''
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/'
        f'User_Product_Level-{level}.xsd"><n1:General_Info>'
        '<Product_Image_Characteristics>'
        '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        f'{listed}</Product_Image_Characteristics></n1:General_Info></n1:{root}>'
    )
    return path


def _offsets(path, offsets, scales):
    with rasterio.open(path, 'r+') as dst:
        dst.offsets = offsets
        dst.scales = scales
    return path


def _declared(path):
    (scene,) = find_scenes(path)
    return scene.reflectance_offset


def test_the_offset_is_read_from_tags_gdal_offsets_or_product_metadata(tmp_path):
    new = SURFACE + 1000
    tagged = write_raster(tmp_path / 'a.tif', new, tags={'BOA_ADD_OFFSET': '-1000'})
    assert _declared(tagged) == -1000
    band_tagged = write_raster(tmp_path / 'b.tif', new)
    with rasterio.open(band_tagged, 'r+') as dst:
        for band in range(1, 5):
            dst.update_tags(band, RADIO_ADD_OFFSET='-1000')
    assert _declared(band_tagged) == -1000
    # reflectance = DN * 0.0001 - 0.1, as COG writers store a product's offset.
    scaled = _offsets(write_raster(tmp_path / 'c.tif', new), [-0.1] * 4, [1e-4] * 4)
    assert _declared(scaled) == pytest.approx(-1000)
    assert _declared(write_raster(tmp_path / 'old.tif', SURFACE)) is None
    # A SAFE product: the band files four folders below MTD_MSIL2A.xml.
    safe = tmp_path / 'S2B_MSIL2A_20240915T102559_N0511_R108_T32TMS.SAFE'
    _product_metadata(safe / 'MTD_MSIL2A.xml')
    folder = safe / 'GRANULE' / 'L2A_T32TMS_A039316' / 'IMG_DATA' / 'R10m'
    for i, band in enumerate(NAMES):
        write_raster(folder / f'T32TMS_20240915_{band}.tif', new[i : i + 1])
    assert _declared(folder) == -1000
    l1c = tmp_path / 'l1c'
    _product_metadata(l1c / 'MTD_MSIL1C.xml', level='1C')
    write_raster(l1c / 'scene.tif', new, descriptions=NAMES)
    assert _declared(l1c / 'scene.tif') == -1000
    # Metadata of a product before 04.00 lists no offsets: it declares none applies.
    before = tmp_path / 'before'
    _product_metadata(before / 'MTD_MSIL2A.xml', offset=None)
    assert _declared(write_raster(before / 'scene.tif', SURFACE)) == 0


def test_offsets_that_do_not_parse_or_disagree_are_refused(tmp_path):
    bad = write_raster(tmp_path / 'bad.tif', SURFACE, tags={'BOA_ADD_OFFSET': 'n/a'})
    with pytest.raises(GeosslInputError, match="BOA_ADD_OFFSET is 'n/a', not a nu"):
        find_scenes(bad)
    xml = _product_metadata(tmp_path / 'p' / 'MTD_MSIL2A.xml', offset='minus 1000')
    with pytest.raises(GeosslInputError, match=r'MTD_MSIL2A\.xml: metadata item BOA_'):
        find_scenes(write_raster(xml.parent / 'scene.tif', SURFACE))
    mixed = write_raster(tmp_path / 'mixed.tif', SURFACE, descriptions=NAMES)
    with rasterio.open(mixed, 'r+') as dst:
        dst.update_tags(1, BOA_ADD_OFFSET='-1000')
    with pytest.raises(GeosslInputError, match='B02 -1000, B03 none'):
        declared_offset([mixed], NAMES)


def _tiles(root, tagged, untagged=()):
    """Tiles of the same surface: some from baseline 04.00 on, tagged, some not."""
    for name in tagged:
        tags = {'BOA_ADD_OFFSET': '-1000'}
        write_raster(root / 'forest' / f'{name}.tif', SURFACE + 1000, tags=tags)
    for name in untagged:
        write_raster(root / 'forest' / f'{name}.tif', SURFACE)
    return root


def test_tiles_of_mixed_baselines_are_read_on_one_scale(tmp_path):
    root = _tiles(tmp_path / 'tiles', ['S2B_MSIL2A_20230601T000000'], ['old'])
    tiles = ImageFolderDataset(root, index_path=tmp_path / 'i.gpkg', progress=False)
    assert list(tiles.index['reflectance_offset']) == [-1000, 0]
    np.testing.assert_array_equal(tiles.read_image(0), tiles.read_image(1))
    np.testing.assert_array_equal(tiles.read_image(1), SURFACE)
    # The index file says what the data declares: nothing, for the old tile.
    stored = read_index(tmp_path / 'i.gpkg')
    assert stored['reflectance_offset'].isna().tolist() == [False, True]


def test_tiles_that_declare_nothing_take_the_offset_given(tmp_path):
    root = tmp_path / 'tiles'
    write_raster(root / 'forest' / 'S2B_MSIL2A_20230601T000000.tif', SURFACE + 1000)
    with pytest.warns(UserWarning, match='declare no reflectance offset; if their'):
        ImageFolderDataset(root, index_path=tmp_path / 'a.gpkg', progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        tiles = ImageFolderDataset(
            root,
            index_path=tmp_path / 'b.gpkg',
            reflectance_offset=-1000,
            band_names=['B02', 'B03', 'B04', 'B08'],
            progress=False,
        )
    assert tiles.index['reflectance_offset'].tolist() == [-1000]
    np.testing.assert_array_equal(tiles.read_image(0), SURFACE)


def test_an_index_from_before_the_offset_is_read_again(tmp_path):
    root = _tiles(tmp_path / 'tiles', ['new'])
    path = tmp_path / 'i.gpkg'
    index = index_source(root, path, progress=False)
    stale = index.drop(columns='reflectance_offset')
    stale.attrs = index.attrs
    write_index(stale, path)
    assert 'reflectance_offset' not in read_index(path)
    assert index_source(root, path)['reflectance_offset'].tolist() == [-1000]


def test_scenes_of_mixed_baselines_give_the_same_chips(tmp_path):
    data = random_chip(bands=4, size=32, seed=5) // 4 + 1
    write_raster(tmp_path / 'old' / 'T18SVG_20160112.tif', data, descriptions=NAMES)
    new = tmp_path / 'new'
    _product_metadata(new / 'MTD_MSIL2A.xml')
    for i, band in enumerate(NAMES):
        write_raster(new / f'T18SVG_20230112_{band}.tif', data[i : i + 1] + 1000)
    scenes = SceneDataset([tmp_path / 'old', new], chip_size=16)
    offsets = scenes.index.groupby('scene')['reflectance_offset'].first()
    assert offsets.tolist() == [0, -1000]
    chips = len(scenes) // 2
    for position in range(chips):
        np.testing.assert_array_equal(
            scenes.read_image(position), scenes.read_image(position + chips)
        )
