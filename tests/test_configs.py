"""Every config in configs/ trains for one step on real sample data (fast_dev_run)."""

from pathlib import Path

import pytest
import yaml

from geossl.cli import main
from geossl.ssl.policies import POLICIES, SUPERVISED, algorithm_names

CONFIGS = Path(__file__).parents[1] / 'configs'
ALGORITHMS = CONFIGS / 'algorithms'
TEACHER_STUDENT = CONFIGS / 'teacher-student.yaml'


def _runs(multilabel: bool) -> list[tuple[Path, ...]]:
    """Every algorithm's config for one kind of data, alone and with the teacher."""
    runs = []
    for name in algorithm_names(multilabel):
        runs.append((ALGORITHMS / f'{name}.yaml',))
        if name != SUPERVISED:
            runs.append((ALGORITHMS / f'{name}.yaml', TEACHER_STUDENT))
    return runs


def _run_id(configs: tuple[Path, ...]) -> str:
    return '+'.join(config.stem for config in configs)


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


def test_every_algorithm_has_its_config_and_every_config_an_algorithm():
    configs = {path.stem: path for path in ALGORITHMS.glob('*.yaml')}
    assert set(configs) == {SUPERVISED, *POLICIES}
    for name, path in configs.items():
        assert yaml.safe_load(path.read_text())['model']['algorithm'] == name
    assert yaml.safe_load(TEACHER_STUDENT.read_text()) == {
        'model': {'teacher_student': True}
    }


@pytest.mark.parametrize('configs', _runs(multilabel=False), ids=_run_id)
def test_eurosat_configs(shared_data, tmp_path, configs):
    status = _fit(
        tmp_path,
        CONFIGS / 'eurosat-ms.yaml',
        *configs,
        data_root=shared_data / 'eurosat-ms-sample',
        extra=['--data.batch_size', '2', '--data.mu', '1'],
    )
    assert status == 0
    assert (tmp_path / 'splits.csv').exists()


@pytest.mark.parametrize('configs', _runs(multilabel=True), ids=_run_id)
def test_bigearthnet_configs(shared_data, tmp_path, configs):
    status = _fit(
        tmp_path,
        CONFIGS / 'bigearthnet.yaml',
        *configs,
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
