import configparser
import subprocess
import sys
import tomllib
import warnings
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
import torch

import geossl
from geossl.cli import TOOLS, main
from geossl.cli.configs import shipped_configs, with_shipped_configs
from geossl.cli.tools import TOOL_FUNCTIONS
from geossl.data.index import read_index
from geossl.data.metadata import footprint_wgs84
from geossl.ssl.policies import POLICIES, SUPERVISED, display_name
from tests.conftest import fit_one_step, random_chip, sample_fit_args, write_raster


def test_index_scene(shared_data, tmp_path, capsys):
    output = tmp_path / 'scene.gpkg'
    assert (
        main(
            [
                'index',
                str(shared_data / 'sentinel2-scene-18SVG-20160112'),
                '-o',
                str(output),
            ]
        )
        == 0
    )
    assert (
        'Indexed 13 samples (rasters layout; 0 labelled, 13 with location, 13 with date)'
        in capsys.readouterr().out
    )
    index = read_index(output)
    assert index['lat'].round(2).eq(37.67).all()
    assert index['lon'].round(2).eq(-75.62).all()


def test_index_bigearthnet(shared_data, tmp_path):
    output = tmp_path / 'b.gpkg'
    assert (
        main(
            [
                'index',
                str(shared_data / 'bigearthnet-s2-examples'),
                '--output',
                str(output),
            ]
        )
        == 0
    )
    index = read_index(output).set_index('sample_id')
    assert index.loc['S2B_MSIL2A_20180204T94161_57_38', 'datetime'] == pd.Timestamp(
        '2018-02-04 09:41:56', tz='UTC'
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / 'C').mkdir()
    write_raster(tmp_path / 'C' / 'ok.tif', random_chip())
    (tmp_path / 'C' / 'broken.tif').write_bytes(b'garbage')
    output = tmp_path / 'out.gpkg'
    assert main(['index', str(tmp_path), '-o', str(output)]) == 2
    error_lines = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith('geossl: error:')
    ]
    assert len(error_lines) == 1
    assert 'broken.tif: cannot be read as a raster' in error_lines[0]
    assert not output.exists()


def test_options(tmp_path, capsys):
    write_raster(
        tmp_path / 'data' / 'C' / 'site_12-03-2019.tif', random_chip(), crs=None
    )
    output = tmp_path / 'i.gpkg'
    args = ['index', str(tmp_path / 'data'), '-o', str(output)]
    assert main(args) == 2
    assert '--location_optional true' in capsys.readouterr().err
    regex = [
        '--filename_regex',
        r'site_(?P<date>\d\d-\d\d-\d{4})',
        '--date_format',
        '%d-%m-%Y',
    ]
    assert main([*args, '--location_optional', 'true', *regex]) == 0
    assert read_index(output)['datetime'].iloc[0] == pd.Timestamp(
        '2019-03-12', tz='UTC'
    )


def _help(capsys, *command):
    """What ``geossl COMMAND --help`` prints; it must exit with status 0."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, '--help'])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def test_help_lists_index(capsys):
    out = _help(capsys, 'index')
    assert '--filename_regex' in out
    assert '--locations' in out


def test_index_scene_chips_with_labels(shared_data, tmp_path, capsys):
    output = tmp_path / 'chips.gpkg'
    scene = str(shared_data / 'sentinel2-scene-18SVG-20160112')
    labels = str(Path(__file__).parents[1] / 'examples' / '18SVG-labels.geojson')
    args = ['index', scene, '--labels', labels, '--chip_size', '64', '-o']
    assert main([*args, str(output)]) == 0
    chips = read_index(output)
    assert 'Indexed 871 samples (scene layout; 157 labelled' in capsys.readouterr().out
    assert len(chips) == 871
    assert set(chips['label'].dropna()) == {
        'bay',
        'built-up',
        'cropland',
        'forest',
        'marsh',
        'ocean',
    }
    assert chips.crs.to_epsg() == 4326
    scene_area = footprint_wgs84('EPSG:32618', (435730, 4160040, 455040, 4179460))
    assert chips.geometry.within(scene_area.buffer(1e-5)).all()
    bad = [*args, str(tmp_path / 'bad.gpkg'), '--class_column', 'landcover']
    assert main(bad) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        "18SVG-labels.geojson: has no column 'landcover'; its columns are class "
        '(choose one as the class column)'
    )
    assert not (tmp_path / 'bad.gpkg').exists()


def test_overview_help_lists_every_command(capsys):
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        'usage: geossl {fit,validate,test,predict,pretrain,index,map,export,'
        'evaluate-representation,embed,qgis,stac,config,cross-validation} ...\n'
    )
    for command in (
        *('fit', 'validate', 'test', 'predict', 'pretrain'),
        *('index', 'map', 'export', 'evaluate-representation', 'embed', 'qgis'),
        *('stac', 'config', 'cross-validation'),
    ):
        assert f'\n  {command}' in out
    assert main([]) == 2


def test_fit_help_explains_data_and_model_options(capsys):
    out = _help(capsys, 'fit')
    for option in ('--data.root', '--data.labels', '--model.teacher'):
        assert option in out
    # Plain text, the model's and the data's options before the Trainer's fifty.
    for markup in ('``', ':class:', ':func:', ':data:', ':mod:'):
        assert markup not in out
    listed = out[out.index('\noptions:') :]
    trainer = listed.index('\n  --trainer.max_steps')
    assert listed.index('\n  --model.recipe.lr') < trainer
    assert listed.index('\n  --data.root') < trainer
    assert 'longitude (test the easternmost' in ' '.join(out.split())
    teacher = _help(capsys, 'fit', '--model.teacher.help', 'TeacherStudentOptions')
    assert '--model.teacher.lambda_d' in teacher
    assert '``' not in teacher


def test_help_text_loses_sphinx_markup_only():
    from geossl.cli.lightning import plain_text

    assert plain_text(
        'see :class:`~geossl.data.scene.SceneDataset`, '
        ':data:`geossl.tasks.recipes.FINE_TUNING_RECIPE`, '
        ':func:`~.configure_optimizer`, :func:`the views <geossl.augment.views>` '
        'and ``random``: {a: 1}'
    ) == (
        'see SceneDataset, geossl.tasks.recipes.FINE_TUNING_RECIPE, '
        'configure_optimizer, the views and random: {a: 1}'
    )


def test_fit_help_ends_with_every_algorithm_and_its_typed_options(capsys):
    out = _help(capsys, 'fit')
    listed = out[out.index('Algorithms (--model.algorithm)') :]
    for name in [SUPERVISED, *POLICIES]:
        assert f'\n  {name} ({display_name(name)}' in listed
    assert 'fixmatch (FixMatch): threshold: float = 0.95' in listed
    assert 'warmup: bool = True' in listed
    assert 'Algorithms (' not in _help(capsys, 'pretrain')


def test_fit_resumes_from_last_checkpoint(shared_data, tmp_path):
    args = sample_fit_args(
        shared_data,
        tmp_path,
        *['--data.batch_size', '2', '--data.mu', '1', '--model.algorithm', 'fixmatch'],
        *['--data.reflectance_offset', '-1000'],
    )
    assert main([*args, '--trainer.max_steps', '2']) == 0
    last = tmp_path / 'checkpoints' / 'last.ckpt'
    assert torch.load(last, weights_only=True)['global_step'] == 2
    assert main([*args, '--trainer.max_steps', '4', '--ckpt_path', 'last']) == 0
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint['global_step'] == 4
    hparams = checkpoint['hyper_parameters']
    assert hparams['data']['band_names'][12] == 'B8A'
    assert hparams['data']['class_names'][1] == 'Forest'
    assert hparams['class_colours'][1] == '#00441b'
    assert hparams['chip_size'] == 64
    assert hparams['data']['reflectance_offset'] == -1000
    assert checkpoint['geossl_version'] == version('geossl')
    # test and validate find the same last.ckpt.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert main(['test', *args[1:], '--ckpt_path', 'last']) == 0
    assert not [w for w in caught if 'no last checkpoint' in str(w.message)]


def test_fit_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    status = main(['fit', '--data.root', str(tmp_path / 'nowhere')])
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f'geossl: error: {tmp_path / "nowhere"}: is neither a folder nor an image file'
    ]


def test_help_answers_without_loading_torch():
    # In a fresh interpreter: the test process has torch loaded already.
    script = (
        'import sys; from geossl.cli import main; '
        "assert main(['--help']) == 0 and main(['nope']) == 2; "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules"
    )
    subprocess.run([sys.executable, '-c', script], check=True, capture_output=True)


def test_version_is_the_installed_one_and_loads_no_torch():
    script = (
        'import sys; from geossl.cli import main; '
        "assert main(['--version']) == 0; "
        "assert 'torch' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, '-c', script], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == f'geossl {version("geossl")}'


def test_the_wheel_the_package_and_the_qgis_plugin_share_one_version():
    repository = Path(__file__).parents[1]
    pyproject = tomllib.loads((repository / 'pyproject.toml').read_text())
    metadata = configparser.ConfigParser()
    metadata.read(repository / 'geossl' / 'qgis_plugin' / 'metadata.txt')
    assert (
        pyproject['project']['version']
        == version('geossl')
        == geossl.__version__
        == metadata['general']['version']
    )


def test_a_shipped_config_is_printed_by_name(capsys):
    assert main(['config', 'algorithms/fixmatch']) == 0
    assert 'algorithm: fixmatch' in capsys.readouterr().out
    assert main(['config', 'fixmatch']) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("geossl: error: config: 'fixmatch' is not a shipped")
    assert 'algorithms/fixmatch, ' in error
    assert '\n' not in error


def test_config_names_become_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'teacher-student.yaml').write_text('model: {}')
    shipped = shipped_configs()
    arguments = ['--config', 'eurosat-ms', '--config=algorithms/fixmatch.yaml']
    arguments += ['--config', 'teacher-student.yaml', '--config', '{model: {}}']
    assert with_shipped_configs([*arguments, '--config']) == [
        '--config',
        str(shipped['eurosat-ms']),
        f'--config={shipped["algorithms/fixmatch"]}',
        # A file of that name in the working folder wins; YAML text stays text.
        '--config',
        'teacher-student.yaml',
        '--config',
        '{model: {}}',
        '--config',
    ]


def test_every_tool_has_its_runner():
    assert tuple(TOOL_FUNCTIONS) == TOOLS


def test_a_runs_saved_config_is_taken_back_by_test(shared_data, tmp_path):
    last = fit_one_step(shared_data, tmp_path, '--trainer.logger', 'true')
    config = tmp_path / 'lightning_logs' / 'version_0' / 'config.yaml'
    # The safe checkpoint reader is saved by name, not as an unreadable object.
    assert 'geossl.inference.checkpoint.SafeCheckpointIO' in config.read_text()
    assert main(['test', '--config', str(config), '--ckpt_path', str(last)]) == 0


#: Warnings a first run may show: each is the user's to act on.
ALLOWED_WARNINGS = (
    # The sample's 1-step epochs are shorter than Lightning's logging interval,
    # which the user sets (--trainer.log_every_n_steps).
    'is smaller than the logging interval',
)


def test_a_first_run_reads_clean(shared_data, tmp_path, capfd):
    """The documented teacher-student fit prints no warning its user cannot act on."""
    arguments = [
        'fit',
        *['--config', 'eurosat-ms', '--config', 'teacher-student'],
        *['--data.root', str(shared_data / 'eurosat-ms-sample')],
        *['--data.labels_per_class', '2', '--data.in_memory', 'true'],
        *['--data.num_workers', '0', '--model.model', 'test_resnet'],
        *['--trainer.max_steps', '2', '--trainer.default_root_dir', str(tmp_path)],
    ]
    with warnings.catch_warnings(record=True) as caught:
        # Every warning a user sees: Python hides DeprecationWarnings (which
        # libraries address to their developers), geossl warns with FutureWarning.
        warnings.simplefilter('always')
        warnings.simplefilter('ignore', DeprecationWarning)
        assert main(arguments) == 0
    unexpected = [
        f'{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})'
        for w in caught
        if not any(allowed in str(w.message) for allowed in ALLOWED_WARNINGS)
    ]
    assert unexpected == [], '\n'.join(unexpected)
    printed = capfd.readouterr().err
    assert 'litlogger' not in printed
    # The progress lines count each epoch's steps to its end.
    epochs = [line for line in printed.splitlines() if line.startswith('Epoch')]
    assert epochs
    assert all('/0 [' not in line for line in epochs)
