from pathlib import Path

import pytest
import torch
from torchgeo.datasets import EuroSAT
from torchgeo.datasets.errors import DatasetNotFoundError

from geossl.data.torchgeo_datasets import BIGEARTHNET_BANDS, bigearthnet, eurosat


@pytest.fixture
def eurosat_root(shared_data: Path, tmp_path: Path) -> Path:
    """TorchGeo's EuroSAT layout, linking to the real sample tiles (even ones in train)."""
    base = tmp_path / 'eurosat' / EuroSAT.base_dir
    train = []
    for cls in sorted((shared_data / 'eurosat-ms-sample').iterdir()):
        (base / cls.name).mkdir(parents=True)
        for i, tif in enumerate(sorted(cls.iterdir())):
            (base / cls.name / tif.name).symlink_to(tif)
            if i % 2 == 0:
                train.append(tif.name.replace('.tif', '.jpg'))
    (tmp_path / 'eurosat' / 'eurosat-train.txt').write_text('\n'.join(train))
    return tmp_path / 'eurosat'


@pytest.fixture
def bigearthnet_root(shared_data: Path, tmp_path: Path) -> Path:
    """TorchGeo's BigEarthNet v1 layout, linking to the real example patches."""
    root = tmp_path / 'bigearthnet'
    (root / 'BigEarthNet-v1.0').mkdir(parents=True)
    patches = sorted((shared_data / 'bigearthnet-s2-examples').iterdir())
    for patch in patches:
        (root / 'BigEarthNet-v1.0' / patch.name).symlink_to(patch)
    for split in ('train', 'val', 'test'):
        (root / f'bigearthnet-{split}.csv').write_text(
            '\n'.join(f'{p.name},s1' for p in patches)
        )
    return root


def test_eurosat_adds_location_to_torchgeo_samples(eurosat_root):
    ds = eurosat(eurosat_root, bands=('B04', 'B03', 'B02'), progress=False)
    assert len(ds) == 50
    sample = ds[0]
    torchgeo_sample = ds.dataset[0]
    assert torch.equal(sample['image'], torchgeo_sample['image'])
    assert sample['label'] == torchgeo_sample['label']
    assert sample['meta_mask'].tolist() == [True, True, False]
    assert 20 < sample['meta'][0] < 35
    assert 40 < sample['meta'][1] < 50
    assert ds.band_names == ['B04', 'B03', 'B02']


def test_bigearthnet_labels_match_torchgeo(bigearthnet_root):
    for num_classes in (19, 43):
        ds = bigearthnet(bigearthnet_root, num_classes=num_classes, progress=False)
        assert len(ds) == 6
        assert ds.band_names == list(BIGEARTHNET_BANDS)
        for i in range(len(ds)):
            assert torch.equal(ds[i]['label'], ds.dataset[i]['label'].float())
            assert ds[i]['meta_mask'].all()


def test_missing_dataset_names_the_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match='Dataset not found'):
        eurosat(tmp_path / 'nowhere', progress=False)
