import copy

import numpy as np
import pytest
import torch
from torchgeo.datasets import EuroSAT

from geossl.data.datasets import InMemoryDataset, encode_labels
from geossl.data.folder import ImageFolderDataset
from geossl.data.metadata import MetadataReader
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    GeosslInputError,
    NodataError,
)
from tests.conftest import random_chip, write_raster


def test_eurosat_ms_folder(shared_data):
    ds = ImageFolderDataset(
        shared_data / 'eurosat-ms-sample',
        bands=['B04', 'B03', 'B02'],
        band_names=EuroSAT.all_band_names,
        progress=False,
    )
    assert len(ds) == 100
    assert ds.classes[0] == 'AnnualCrop'
    assert len(ds.classes) == 10
    sample = ds[0]
    assert sample['image'].shape == (3, 64, 64)
    assert sample['image'].dtype == torch.float32
    assert sample['label'].item() == 0
    assert sample['meta_mask'].tolist() == [True, True, False]  # EuroSAT has no dates
    assert sample['crs'].startswith('EPSG:326')
    assert ds.band_names == ['B04', 'B03', 'B02']
    # Band selection really picks B04 (file band 4).
    with pytest.warns(UserWarning, match='do not name their bands'):
        full = ImageFolderDataset(shared_data / 'eurosat-ms-sample', progress=False)
    assert torch.equal(full[0]['image'][3], sample['image'][0])


def test_unnamed_eurosat_ms_bands_get_eurosats_order_suggested(shared_data, recwarn):
    ImageFolderDataset(shared_data / 'eurosat-ms-sample', progress=False)
    (warning,) = [w for w in recwarn if 'bands' in str(w.message)]
    message = str(warning.message)
    assert 'maps only rasters whose bands are unnamed too' in message
    assert 'name them with --data.band_names' in message
    assert '"[B01, B02, B03, B04, B05, B06, B07, B08, B09, B10, B11, B12, B8A]"' in (
        message
    )
    recwarn.clear()
    ImageFolderDataset(
        shared_data / 'eurosat-ms-sample',
        band_names=EuroSAT.all_band_names,
        progress=False,
    )
    assert not [w for w in recwarn if 'bands' in str(w.message)]


def test_other_unnamed_bands_get_no_eurosat_suggestion(tmp_path, recwarn):
    for name in ('Forest', 'River'):
        write_raster(tmp_path / name / 'a.tif', random_chip(bands=13, size=32))
    ImageFolderDataset(tmp_path, progress=False)
    (warning,) = [w for w in recwarn if 'bands' in str(w.message)]
    assert '--data.band_names' in str(warning.message)
    assert 'EuroSAT' not in str(warning.message)  # 32 x 32 tiles are not EuroSAT's


def test_bigearthnet_folder_multilabel(shared_data):
    ds = ImageFolderDataset(shared_data / 'bigearthnet-s2-examples', progress=False)
    assert ds.multilabel
    assert len(ds.classes) == 19
    sample = ds[0]
    assert sample['image'].shape == (12, 120, 120)
    assert sample['label'].dtype == torch.float32
    assert sample['label'].shape == (19,)
    names = {ds.classes[i] for i in torch.nonzero(sample['label']).flatten().tolist()}
    assert names == {
        'Arable land',
        'Land principally occupied by agriculture, with significant areas of natural vegetation',
    }
    assert sample['meta_mask'].all()
    ds43 = ImageFolderDataset(
        shared_data / 'bigearthnet-s2-examples',
        bigearthnet_classes=43,
        chip_size=60,
        progress=False,
    )
    assert ds43[0]['label'].shape == (43,)
    assert ds43[0]['image'].shape == (12, 60, 60)


def test_scene_folder_is_unlabelled_rasters(tmp_path):
    write_raster(tmp_path / 'a.tif', random_chip(bands=2))
    ds = ImageFolderDataset(tmp_path, progress=False)
    assert ds.classes == []
    assert not ds.is_labelled.any()
    assert ds[0]['label'].item() == -1


def test_wrong_band_count_among_chips(tmp_path):
    for i in range(3):
        write_raster(tmp_path / 'C' / f'{i}.tif', random_chip(bands=4, seed=i))
    write_raster(tmp_path / 'C' / 'odd.tif', random_chip(bands=3))
    with pytest.raises(
        BandMismatchError, match=r'odd\.tif: has 3 bands, expected 4 bands'
    ):
        ImageFolderDataset(tmp_path, progress=False)


def test_odd_sizes_need_a_chip_size(tmp_path):
    write_raster(tmp_path / 'C' / 'a.tif', random_chip(size=16))
    write_raster(tmp_path / 'C' / 'b.tif', random_chip(size=16, seed=1))
    write_raster(tmp_path / 'C' / 'c.tif', random_chip(size=20))
    message = r'c\.tif: has a width of 20 pixels, .*\(--data\.chip_size\)'
    with pytest.raises(BandMismatchError, match=message):
        ImageFolderDataset(tmp_path, progress=False)
    ds = ImageFolderDataset(tmp_path, chip_size=12, progress=False)
    assert {ds[i]['image'].shape for i in range(3)} == {(4, 12, 12)}
    with pytest.raises(ChipSizeError, match='smaller than the chip size 18'):
        ImageFolderDataset(tmp_path, chip_size=18, progress=False)


def test_band_names_errors(tmp_path):
    write_raster(tmp_path / 'C' / 'a.tif', random_chip(bands=2))
    with pytest.raises(BandMismatchError, match="has no band 'B05'"):
        ImageFolderDataset(
            tmp_path, bands=['B05'], band_names=['B04', 'B08'], progress=False
        )
    with pytest.raises(BandMismatchError, match='lists 3 names but'):
        ImageFolderDataset(tmp_path, band_names=['a', 'b', 'c'], progress=False)
    with pytest.raises(BandMismatchError, match=r'band index 2 is outside 0\.\.1'):
        ImageFolderDataset(tmp_path, bands=[2], progress=False)


def test_nodata_is_reported_when_read(tmp_path):
    data = random_chip(bands=1)
    data[0, 0, 0] = 0
    write_raster(tmp_path / 'C' / 'hole.tif', data, nodata=0)
    ds = ImageFolderDataset(tmp_path, progress=False)
    with pytest.raises(NodataError, match=r'hole\.tif'):
        ds[0]
    assert (
        ImageFolderDataset(tmp_path, nodata='zero', progress=False)[0]['image'][0, 0, 0]
        == 0
    )


def test_unreferenced_images_with_optional_location(tmp_path):
    write_raster(tmp_path / 'C' / 'a.tif', random_chip(), crs=None)
    ds = ImageFolderDataset(
        tmp_path, reader=MetadataReader(require_location=False), progress=False
    )
    sample = ds[0]
    assert sample['crs'] is None
    assert not sample['meta_mask'].any()
    assert not torch.isnan(sample['meta']).any()


def test_encode_labels():
    targets = encode_labels(['b', None, 'a'], ['a', 'b'], multilabel=False)
    np.testing.assert_array_equal(targets, [1, -1, 0])
    multi = encode_labels(['a; b', None], ['a', 'b'], multilabel=True)
    np.testing.assert_array_equal(multi, [[1, 1], [-1, -1]])
    renaming = {'x': 'A', 'y': None}
    renamed = encode_labels(['x; y; A'], ['A'], multilabel=True, label_map=renaming)
    np.testing.assert_array_equal(renamed, [[1]])
    with pytest.raises(GeosslInputError, match="label 'z' is not one of the 1 classes"):
        encode_labels(['x; z'], ['A'], multilabel=True, label_map=renaming)
    with pytest.raises(GeosslInputError, match="label 'c' is not one of the 2 classes"):
        encode_labels(['c'], ['a', 'b'], multilabel=False)


def test_in_memory_samples_equal_the_files_and_are_stored_exactly(eurosat_ms):
    held = InMemoryDataset(eurosat_ms, progress=False)
    assert len(held) == len(eurosat_ms)
    for position in (0, 57, 99):
        read, kept = eurosat_ms[position], held[position]
        assert torch.equal(kept['image'], read['image'])
        assert kept['image'].dtype == torch.float32
        for key in ('label', 'meta', 'meta_mask', 'index', 'bounds'):
            assert torch.equal(kept[key], read[key])
        assert kept['crs'] == read['crs']
    # EuroSAT-MS reflectance is uint16: kept in two bytes per value.
    assert {image.dtype for image in held.images} <= {
        torch.uint8,
        torch.int16,
        torch.uint16,
    }


def test_in_memory_keeps_bigearthnet_multilabels_mapped_to_19_classes(bigearthnet):
    held = InMemoryDataset(bigearthnet, progress=False)
    assert np.array_equal(held.targets, bigearthnet.targets)
    assert torch.equal(held[0]['image'], bigearthnet[0]['image'])


def test_in_memory_transforms_and_keeps_fractions_as_float(eurosat_ms):
    held = InMemoryDataset(
        eurosat_ms, transform=lambda image: image[:2, :8, :8] / 3, progress=False
    )
    assert held.images[0].dtype == torch.float32
    torch.testing.assert_close(held[0]['image'], eurosat_ms[0]['image'][:2, :8, :8] / 3)


@pytest.mark.parametrize('data', ['eurosat_ms', 'bigearthnet'])
def test_samples_carry_their_index_rows_metadata(data, request):
    ds = request.getfixturevalue(data)
    for position in (0, len(ds) - 1):
        sample, row = ds[position], ds.index.iloc[position]
        meta, mask = ds.metadata(position).to_tensors()
        assert torch.equal(sample['meta'], meta)
        assert torch.equal(sample['meta_mask'], mask)
        assert sample['crs'] == row['crs']
        bounds = [row[c] for c in ('minx', 'miny', 'maxx', 'maxy')]
        assert sample['bounds'].tolist() == bounds
    # A new index (reordered, say) gives its own rows.
    reordered = copy.copy(ds)
    reordered.index = ds.index.iloc[::-1].reset_index(drop=True)
    assert torch.equal(reordered[0]['meta'], ds[len(ds) - 1]['meta'])
    assert reordered[0]['crs'] == ds[len(ds) - 1]['crs']
