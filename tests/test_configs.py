"""Every shipped config trains for one step on real sample data (fast_dev_run).

The configs are named as a user of the installed package names them
(``--config algorithms/fixmatch``), not by their files in the clone.
"""

from pathlib import Path

import pytest
import yaml

from geossl.cli import main
from geossl.cli.configs import shipped_configs
from geossl.ssl.policies import POLICIES, SUPERVISED, algorithm_names

REPOSITORY = Path(__file__).parents[1]
CONFIGS = shipped_configs()
TEACHER_STUDENT = 'teacher-student'


def _runs(multilabel: bool) -> list[tuple[str, ...]]:
    """Every algorithm's config for one kind of data, alone and with the teacher."""
    runs = []
    for name in algorithm_names(multilabel):
        runs.append((f'algorithms/{name}',))
        if name != SUPERVISED:
            runs.append((f'algorithms/{name}', TEACHER_STUDENT))
    return runs


def _run_id(configs: tuple[str, ...]) -> str:
    return '+'.join(config.split('/')[-1] for config in configs)


def _fit(tmp_path, *configs, data_root, extra=()):
    args = ['fit']
    for config in configs:
        args += ['--config', config]
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
    configs = {
        name.removeprefix('algorithms/'): path
        for name, path in CONFIGS.items()
        if name.startswith('algorithms/')
    }
    assert set(configs) == {SUPERVISED, *POLICIES}
    for name, path in configs.items():
        assert yaml.safe_load(path.read_text())['model']['algorithm'] == name
    assert yaml.safe_load(CONFIGS[TEACHER_STUDENT].read_text()) == {
        'model': {'teacher': {'metadata': 'auto'}}
    }


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_no_shipped_config_names_a_file_of_the_clone(name):
    """An installed config cannot point at the clone's files or the data beside it."""
    config = yaml.safe_load(CONFIGS[name].read_text())
    for value in _strings(config):
        assert not value.startswith('..'), value
        assert not (REPOSITORY / value).exists(), value
        assert not (REPOSITORY.parent / value).exists(), value


def test_the_clones_configs_are_the_shipped_ones():
    clone = REPOSITORY / 'configs'
    assert clone.resolve() == CONFIGS['eurosat-ms'].parent.resolve()


@pytest.mark.parametrize('configs', _runs(multilabel=False), ids=_run_id)
def test_eurosat_configs(shared_data, tmp_path, configs):
    status = _fit(
        tmp_path,
        'eurosat-ms',
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
        'bigearthnet',
        *configs,
        data_root=shared_data / 'bigearthnet-s2-examples',
    )
    assert status == 0


def test_scene_walkthrough_config(shared_data, tmp_path):
    status = _fit(
        tmp_path,
        '18SVG',
        data_root=shared_data / 'sentinel2-scene-18SVG-20160112',
        extra=[
            '--data.labels',
            str(REPOSITORY / 'examples' / '18SVG-labels.geojson'),
            '--data.unlabelled_chips',
            '50',
        ],
    )
    assert status == 0


PRETRAINING = [name for name in CONFIGS if name.startswith('pretrain/')]


def test_every_pretraining_method_has_a_config():
    assert PRETRAINING == [
        'pretrain/barlowtwins',
        'pretrain/byol',
        'pretrain/moco',
        'pretrain/simclr',
        'pretrain/simsiam',
    ]


@pytest.mark.parametrize('config', PRETRAINING)
def test_pretraining_configs(shared_data, tmp_path, config):
    status = main(
        [
            'pretrain',
            *['--config', config],
            *['--data.root', str(shared_data / 'eurosat-ms-sample')],
            # Small and quick: the configs' methods and settings, a tiny backbone.
            *['--model.model', 'test_resnet', '--data.batch_size', '4'],
            *['--data.chip_size', '32', '--trainer.fast_dev_run', '1'],
            *['--trainer.default_root_dir', str(tmp_path)],
        ]
    )
    assert status == 0
    assert (tmp_path / 'splits.csv').exists()
