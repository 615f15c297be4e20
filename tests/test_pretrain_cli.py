"""geossl pretrain, then fit from its backbone, evaluate-representation and embed."""

import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import torch

from geossl.cli import main

CHIP = '32'


def _data(shared_data: Path) -> list[str]:
    return [
        *['--data.root', str(shared_data / 'eurosat-ms-sample')],
        *['--data.labels_per_class', '2', '--data.chip_size', CHIP],
    ]


@pytest.fixture(scope='module')
def pretrained(shared_data, tmp_path_factory) -> Path:
    """SimCLR pretrained for three steps on the real EuroSAT-MS sample."""
    run = tmp_path_factory.mktemp('pretrain')
    status = main(
        [
            'pretrain',
            *['--model', 'SimCLR', '--model.model', 'test_resnet'],
            *_data(shared_data),
            *['--data.in_memory', 'true', '--data.batch_size', '16'],
            *['--trainer.max_steps', '3', '--trainer.logger', 'false'],
            *['--trainer.enable_progress_bar', 'false'],
            *['--trainer.default_root_dir', str(run)],
        ]
    )
    assert status == 0
    return run


def test_pretraining_holds_out_fits_split(pretrained):
    splits = pd.read_csv(pretrained / 'splits.csv', comment='#')
    # fit's split of the same options: validation and test tiles were not seen.
    assert splits['split'].value_counts().to_dict() == {
        'unlabelled': 60,
        'labelled': 20,
        'val': 10,
        'test': 10,
    }
    checkpoint = torch.load(pretrained / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert checkpoint['global_step'] == 3
    assert checkpoint['hyper_parameters']['method'] == 'simclr'


def test_fit_starts_from_the_pretrained_backbone(pretrained, shared_data, tmp_path):
    weights = pretrained / 'checkpoints' / 'last.ckpt'
    fit = [
        'fit',
        *_data(shared_data),
        *['--model.model', 'test_resnet', '--model.algorithm', 'fixmatch'],
        *['--model.teacher.metadata', 'location'],
        *['--data.batch_size', '4', '--data.mu', '1'],
        *['--trainer.max_steps', '1', '--trainer.limit_val_batches', '1'],
        *['--trainer.logger', 'false', '--trainer.enable_progress_bar', 'false'],
        *['--trainer.default_root_dir', str(tmp_path)],
    ]
    assert main([*fit, '--model.weights', str(weights)]) == 0
    assert (tmp_path / 'checkpoints' / 'last.ckpt').exists()


def _table_rows(output: str) -> dict[str, tuple[float, float]]:
    rows = re.findall(
        r'^\| (kNN \(k=\d+, T=[\d.]+\)|linear probe) \| ([\d.]+) \| '
        r'([\d.]+) \|$',
        output,
        re.MULTILINE,
    )
    return {name: (float(top1), float(top5)) for name, top1, top5 in rows}


@pytest.mark.parametrize(('fitted_on', 'tiles'), [('labelled', 20), ('train', 80)])
def test_evaluate_representation_on_the_runs_held_out_tiles(
    pretrained, shared_data, capsys, fitted_on, tiles
):
    checkpoint = pretrained / 'checkpoints' / 'last.ckpt'
    status = main(
        [
            'evaluate-representation',
            str(checkpoint),
            *_data(shared_data),
            *['--fitted_on', fitted_on, '--k', '20'],
        ]
    )
    assert status == 0
    output = capsys.readouterr().out
    assert f'Fitted on {tiles} {fitted_on} tiles, evaluated on 10 test tiles' in output
    assert f'(split: {pretrained / "splits.csv"})' in output
    rows = _table_rows(output)
    assert rows.keys() == {'kNN (k=20, T=0.1)', 'linear probe'}
    for top1, top5 in rows.values():
        # Tenths of ten test tiles; top-5 of ten classes holds top-1.
        assert top1 * 10 % 100 == pytest.approx(0, abs=1e-6)
        assert 0 <= top1 <= top5 <= 100


def test_embed_writes_every_tile_with_its_place_and_a_tsne(
    pretrained, shared_data, tmp_path
):
    output, picture = tmp_path / 'tiles.gpkg', tmp_path / 'tiles.png'
    checkpoint = pretrained / 'checkpoints' / 'last.ckpt'
    status = main(
        [
            'embed',
            str(checkpoint),
            *_data(shared_data),
            *['-o', str(output), '--tsne', str(picture)],
        ]
    )
    assert status == 0
    table = gpd.read_file(output)
    assert len(table) == 100
    assert table.crs.to_epsg() == 4326
    splits = pd.read_csv(pretrained / 'splits.csv', comment='#')
    merged = table.merge(splits, on='sample_id', suffixes=('', '_run'))
    assert (merged['split'] == merged['split_run']).all()
    # EuroSAT's class folders, and places in Europe from the GeoTIFFs.
    assert set(table['class']) == {
        p.name for p in (shared_data / 'eurosat-ms-sample').iterdir() if p.is_dir()
    }
    assert table.geometry.x.between(-11, 35).all()
    assert table.geometry.y.between(34, 72).all()
    features = [c for c in table.columns if c.startswith('features_')]
    projection = [c for c in table.columns if c.startswith('projection_')]
    assert len(features) == 96  # timm's test_resnet
    assert projection
    assert picture.stat().st_size > 10_000
    # A second run does not replace them unless told to.
    assert main(['embed', str(checkpoint), *_data(shared_data), '-o', str(output)]) == 2


def test_pretrain_help_is_under_its_own_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['pretrain', '--help'])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith('usage: geossl pretrain ')
    assert 'geossl.tasks.pretrain.BarlowTwins' in out


def test_an_unknown_method_names_the_methods(capsys):
    assert main(['pretrain', '--model=DINO', '--data.root', 'x']) == 2
    assert capsys.readouterr().err.strip() == (
        "geossl: error: --model: is 'DINO', not a method: choose from SimCLR, MoCo, "
        'BYOL, SimSiam, BarlowTwins'
    )
