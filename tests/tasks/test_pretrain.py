"""Self-supervised pretraining: every method trains, embeds and checkpoints."""

from pathlib import Path

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from geossl.data.datamodule import PretrainingDataModule
from geossl.data.datasets import InMemoryDataset
from geossl.data.splits import SplitConfig
from geossl.errors import GeosslInputError
from geossl.models.backbones import create_backbone
from geossl.models.weight_sources import read_backbone
from geossl.tasks.pretrain import METHODS, PretrainingTask

CHIP = 32


def _task(method: str, dataset, **options: object) -> PretrainingTask:
    torch.manual_seed(0)
    return METHODS[method](
        **(
            {
                'model': 'test_resnet',
                'in_channels': len(dataset.band_names),
                'chip_size': CHIP,
                'band_names': dataset.band_names,
            }
            | options
        )
    )


def _datamodule(dataset, run_dir: Path) -> PretrainingDataModule:
    split = SplitConfig(labels_per_class=2, val_fraction=0.1, test_fraction=0.1)
    return PretrainingDataModule(dataset, split, run_dir, batch_size=8)


def _backbone(task: PretrainingTask) -> dict[str, torch.Tensor]:
    """The backbone's weights by their own names (BYOL nests it deeper)."""
    return {
        key.removeprefix('model.backbone.model.').removeprefix(
            'backbone.'
        ): value.clone()
        for key, value in task.state_dict().items()
        if key.startswith(('backbone.', 'model.backbone.model.'))
    }


@pytest.fixture(scope='module')
def small_eurosat(eurosat_ms):
    """The real EuroSAT-MS sample, cropped to 32 x 32 and held in memory."""
    return InMemoryDataset(eurosat_ms, lambda image: image[:, :CHIP, :CHIP])


@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_method_trains_its_backbone_and_embeds(method, small_eurosat, tmp_path):
    task = _task(method, small_eurosat)
    before = _backbone(task)
    assert before, 'the backbone is where fit --model.weights looks'
    datamodule = _datamodule(small_eurosat, tmp_path)
    trainer = Trainer(
        max_steps=2,
        logger=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / 'checkpoints', save_last=True)],
    )
    trainer.fit(task, datamodule)
    # The data's statistics normalise, and the backbone learned.
    assert torch.allclose(task.views.mean.flatten(), datamodule.mean)
    after = _backbone(task)
    assert any(not torch.equal(before[key], after[key]) for key in before)
    assert torch.isfinite(trainer.callback_metrics['train_loss'])
    # Embeddings of normalised images: pooled features and projections.
    images = task.views.normalise(small_eurosat[0]['image'][None].repeat(3, 1, 1, 1))
    embeddings = task.eval().embed(images)
    features = create_backbone('test_resnet', 13, CHIP).num_features
    assert embeddings['features'].shape == (3, features)
    assert embeddings['projection'].ndim == 2
    assert len(embeddings['projection']) == 3
    # The checkpoint names the method, bands and backbone for fit and embed.
    checkpoint = torch.load(tmp_path / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert checkpoint['hyper_parameters']['method'] == method
    assert checkpoint['hyper_parameters']['band_names'] == small_eurosat.band_names
    weights = read_backbone(tmp_path / 'checkpoints' / 'last.ckpt')
    assert weights.model == 'test_resnet'
    assert weights.bands == tuple(small_eurosat.band_names)
    assert weights.state.keys() == after.keys()
    assert all(torch.equal(weights.state[key], after[key]) for key in after)


def test_a_vision_transformer_needs_224_chips(small_eurosat):
    with pytest.raises(GeosslInputError, match='224'):
        _task('simclr', small_eurosat, model='vit_small_patch16_224')


def test_data_with_other_bands_is_refused(small_eurosat, tmp_path):
    task = _task('simsiam', small_eurosat, in_channels=4, band_names=None)
    trainer = Trainer(max_steps=1, logger=False, enable_progress_bar=False)
    with pytest.raises(GeosslInputError, match='in_channels: is 4 but the data has 13'):
        trainer.fit(task, _datamodule(small_eurosat, tmp_path))
