"""Every config in configs/ trains for one step on real sample data (fast_dev_run)."""

from pathlib import Path

import pytest

from geossl.cli import main

CONFIGS = Path(__file__).parents[1] / 'configs'
ALGORITHMS = CONFIGS / 'algorithms'
MULTI_CLASS = sorted(
    p.name for p in ALGORITHMS.glob('*.yaml') if 'multilabel' not in p.name
)
MULTI_LABEL = sorted(p.name for p in ALGORITHMS.glob('*multilabel.yaml'))


def _fit(tmp_path, *configs, data_root, extra=()):
    args = ['fit']
    for config in configs:
        args += ['--config', str(config)]
    args += [
        '--data.root',
        str(data_root),
        '--trainer.fast_dev_run',
        '1',
        '--trainer.default_root_dir',
        str(tmp_path),
        '--data.num_workers',
        '0',
        *extra,
    ]
    return main(args)


def test_every_algorithm_config_is_tested():
    assert len(MULTI_CLASS) == 13
    assert len(MULTI_LABEL) == 2


@pytest.mark.parametrize('algorithm', MULTI_CLASS)
def test_eurosat_configs(shared_data, tmp_path, algorithm):
    status = _fit(
        tmp_path,
        CONFIGS / 'eurosat-ms.yaml',
        ALGORITHMS / algorithm,
        data_root=shared_data / 'eurosat-ms-sample',
        extra=['--data.batch_size', '2', '--data.mu', '1'],
    )
    assert status == 0
    assert (tmp_path / 'splits.csv').exists()


@pytest.mark.parametrize('algorithm', MULTI_LABEL)
def test_bigearthnet_configs(shared_data, tmp_path, algorithm):
    status = _fit(
        tmp_path,
        CONFIGS / 'bigearthnet.yaml',
        ALGORITHMS / algorithm,
        data_root=shared_data / 'bigearthnet-s2-examples',
    )
    assert status == 0


def test_scene_walkthrough_config(shared_data, tmp_path):
    status = _fit(
        tmp_path,
        CONFIGS / '18SVG.yaml',
        data_root=shared_data / 'sentinel2-scene-18SVG-20160112',
        extra=[
            '--data.labels',
            str(Path(__file__).parents[1] / 'examples' / '18SVG-labels.geojson'),
            '--data.unlabelled_chips',
            '50',
        ],
    )
    assert status == 0


PRETRAINING = sorted(p.name for p in (CONFIGS / 'pretrain').glob('*.yaml'))


def test_every_pretraining_method_has_a_config():
    assert PRETRAINING == [
        'barlowtwins.yaml',
        'byol.yaml',
        'moco.yaml',
        'simclr.yaml',
        'simsiam.yaml',
    ]


@pytest.mark.parametrize('config', PRETRAINING)
def test_pretraining_configs(shared_data, tmp_path, config):
    status = main(
        [
            'pretrain',
            *['--config', str(CONFIGS / 'pretrain' / config)],
            *['--data.root', str(shared_data / 'eurosat-ms-sample')],
            # Small and quick: the configs' methods and settings, a tiny backbone.
            *['--model.model', 'test_resnet', '--data.batch_size', '4'],
            *['--data.chip_size', '32', '--trainer.fast_dev_run', '1'],
            *['--trainer.default_root_dir', str(tmp_path)],
        ]
    )
    assert status == 0
    assert (tmp_path / 'splits.csv').exists()
