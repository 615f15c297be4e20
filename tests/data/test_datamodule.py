from pathlib import Path

import numpy as np
import pytest
import torch

from geossl.data.datamodule import (
    GeoDataModule,
    PretrainingDataModule,
    SemiSupervisedDataModule,
    collate_samples,
)
from geossl.data.datasets import InMemoryDataset
from geossl.data.folder import ImageFolderDataset
from geossl.data.scene import SceneDataset
from geossl.data.splits import SplitConfig
from geossl.errors import GeosslInputError, SplitError
from tests.conftest import random_chip, write_raster


def test_training_batches_pair_labelled_and_unlabelled(eurosat_ms, tmp_path):
    dm = SemiSupervisedDataModule(
        eurosat_ms, SplitConfig(labels_per_class=2), tmp_path, batch_size=4, mu=3
    )
    dm.setup('fit')
    # 20 labelled + 60 unlabelled (+ the 20 labelled, FixMatch-style) = 80 -> 80 / 12.
    assert len(dm.positions['unlabelled']) == 80
    assert dm.steps_per_epoch == 7
    batches = [batch for batch, _, _ in dm.train_dataloader()]
    assert len(batches) == 7
    labelled, unlabelled = batches[0]['labelled'], batches[0]['unlabelled']
    assert labelled['image'].shape == (4, 13, 64, 64)
    assert unlabelled['image'].shape == (12, 13, 64, 64)
    assert unlabelled['meta'].shape == (12, 3)
    assert unlabelled['meta_mask'].dtype == torch.bool
    labelled_positions = set(dm.positions['labelled'].tolist())
    assert set(labelled['index'].tolist()) <= labelled_positions
    assert len(labelled['crs']) == 4
    assert isinstance(labelled['crs'][0], str)
    assert (tmp_path / 'splits.csv').exists()


def test_statistics_from_training_data_and_state(eurosat_ms, tmp_path):
    dm = SemiSupervisedDataModule(
        eurosat_ms, SplitConfig(labels_per_class=2), tmp_path, batch_size=4
    )
    dm.setup('fit')
    train = sorted(set(dm.positions['labelled']) | set(dm.positions['unlabelled']))
    images = torch.stack([eurosat_ms[i]['image'] for i in train]).double()
    torch.testing.assert_close(
        dm.mean, images.mean(dim=(0, 2, 3)).float(), rtol=1e-5, atol=1e-3
    )
    torch.testing.assert_close(
        dm.std, images.std(dim=(0, 2, 3), unbiased=False).float(), rtol=1e-4, atol=1e-2
    )
    state = dm.state_dict()
    restored = SemiSupervisedDataModule(eurosat_ms, run_dir=tmp_path / 'other')
    restored.load_state_dict(state)
    assert torch.equal(restored.mean, dm.mean)
    assert state['classes'] == eurosat_ms.classes


def test_given_statistics_skip_computation(eurosat_ms, tmp_path):
    dm = SemiSupervisedDataModule(
        eurosat_ms, run_dir=tmp_path, mean=[0.0] * 13, std=[1.0] * 13
    )
    dm.setup('fit')
    assert dm.mean.tolist() == [0.0] * 13


def test_supervised_only_and_validation(eurosat_ms, tmp_path):
    dm = SemiSupervisedDataModule(
        eurosat_ms, SplitConfig(labels_per_class=3), tmp_path, batch_size=8, mu=0
    )
    dm.setup('fit')
    batch, _, _ = next(iter(dm.train_dataloader()))
    assert set(batch) == {'labelled'}
    val = list(dm.val_dataloader())
    assert sum(len(b['label']) for b in val) == 10


def test_bad_options(eurosat_ms):
    with pytest.raises(SplitError, match='batch_size: is 0'):
        SemiSupervisedDataModule(eurosat_ms, batch_size=0)


def test_collate_keeps_text_as_lists():
    batch = collate_samples(
        [{'x': torch.ones(2), 'crs': None}, {'x': torch.zeros(2), 'crs': 'EPSG:4326'}]
    )
    assert batch['x'].shape == (2, 2)
    assert batch['crs'] == [None, 'EPSG:4326']


def test_balanced_labelled_batches(shared_data, tmp_path):
    scene = SceneDataset(
        shared_data / 'sentinel2-scene-18SVG-20160112',
        Path(__file__).parents[2] / 'examples' / '18SVG-labels.geojson',
        chip_size=64,
        unlabelled_chips=20,
    )
    split = SplitConfig(labels_per_class=None, label_fraction=1.0, seed=0)
    dm = SemiSupervisedDataModule(
        scene, split, tmp_path, batch_size=60, mu=0, balance_classes=True
    )
    dm.setup('fit')
    labelled = scene.targets[dm.positions['labelled']]
    assert np.bincount(labelled).max() > 10 * np.bincount(labelled).min()
    labels = torch.cat(
        [batch['labelled']['label'] for batch, _, _ in dm.train_dataloader()]
    )
    shares = np.bincount(labels.numpy(), minlength=6) / len(labels)
    assert shares.min() > 0.08
    assert shares.max() < 0.3


def test_balancing_refuses_multilabel_data(bigearthnet, tmp_path):
    with pytest.raises(SplitError, match='balance_classes: is for multi-class data'):
        SemiSupervisedDataModule(bigearthnet, run_dir=tmp_path, balance_classes=True)


def test_the_command_datamodule_can_hold_the_data_in_memory(shared_data, tmp_path):
    datamodule = GeoDataModule(
        str(shared_data / 'eurosat-ms-sample'), in_memory=True, run_dir=str(tmp_path)
    )
    assert isinstance(datamodule.dataset, InMemoryDataset)
    datamodule.setup('fit')
    batch = next(iter(datamodule.train_dataloader()))[0]
    assert batch['unlabelled']['image'].shape == (32 * 7, 13, 64, 64)


def test_the_reflectance_offset_given_reaches_every_reader(tmp_path):
    data = random_chip(bands=4, size=16, seed=1) + 1000
    for i in range(4):
        write_raster(tmp_path / 'tiles' / f'tile{i}.tif', data)
    datamodule = GeoDataModule(
        str(tmp_path / 'tiles'),
        reflectance_offset=-1000,
        in_memory=True,
        run_dir=str(tmp_path / 'run'),
    )
    assert datamodule.dataset.reflectance_offset == -1000
    np.testing.assert_array_equal(datamodule.dataset.read_image(0), data - 1000)
    with pytest.raises(GeosslInputError, match="reflectance_offset: TorchGeo's euro"):
        GeoDataModule(str(tmp_path), dataset='eurosat', reflectance_offset=-1000)


def test_pretraining_on_data_without_labels_uses_every_tile(tmp_path):
    for i in range(10):
        write_raster(tmp_path / 'tiles' / f'tile{i}.tif', random_chip(seed=i))
    dataset = ImageFolderDataset(tmp_path / 'tiles', progress=False)
    assert not dataset.is_labelled.any()
    datamodule = PretrainingDataModule(dataset, run_dir=tmp_path / 'run', batch_size=4)
    datamodule.setup('fit')
    assert sorted(datamodule.positions['unlabelled']) == list(range(10))
    assert datamodule.steps_per_epoch == 3
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 3
    assert all(batch['image'].shape == (4, 4, 16, 16) for batch in batches)
    # The split is saved like fit's, and reloaded as it is.
    again = PretrainingDataModule(dataset, run_dir=tmp_path / 'run', batch_size=4)
    again.setup('fit')
    assert (again.splits['split'] == 'unlabelled').all()


def test_pretraining_draws_only_training_tiles(eurosat_ms, tmp_path):
    split = SplitConfig(labels_per_class=2, val_fraction=0.1, test_fraction=0.1)
    datamodule = PretrainingDataModule(eurosat_ms, split, tmp_path, batch_size=8)
    datamodule.setup('fit')
    held_out = set(datamodule.positions['val']) | set(datamodule.positions['test'])
    assert len(held_out) == 20
    drawn = [int(i) for batch in datamodule.train_dataloader() for i in batch['index']]
    # One epoch is one pass over the 80 training tiles, labelled or not.
    assert datamodule.steps_per_epoch == 10
    assert len(drawn) == 80
    assert not set(drawn) & held_out
