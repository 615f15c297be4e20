import signal
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch

from geossl.cli import main
from geossl.data.scene_files import find_scenes
from geossl.inference.checkpoint import load_task
from geossl.inference.map_writer import NODATA_CLASS
from geossl.inference.scene_mapper import SceneMapper
from geossl.inference.windows import tent_weights, window_starts
from tests.conftest import random_chip, write_raster
from tests.inference.conftest import (
    S2_BANDS,
    assert_same_classes,
    save_checkpoint,
    small_checkpoint,
)


def test_blended_map_equals_an_in_memory_reference(tmp_path):
    data = random_chip(bands=3, size=45, seed=3)[:, :37, :]
    data[:, 30:, 40:] = 0  # no data in every band
    scene_path = write_raster(
        tmp_path / 'scene.tif', data, descriptions=['r', 'g', 'n']
    )
    task = load_task(small_checkpoint(tmp_path / 'model.ckpt', num_classes=4))
    (scene,) = find_scenes(scene_path)
    output = tmp_path / 'map.tif'
    SceneMapper(task, stride=5, batch_size=3, progress=False).map_scene(
        scene, output, probabilities='float16'
    )
    # The reference: every window at once, in memory.
    image = torch.from_numpy(data.astype(np.float32))
    weights = torch.from_numpy(tent_weights(16))
    total = torch.zeros(4, 37, 45)
    weight = torch.zeros(37, 45)
    with torch.no_grad():
        for top in window_starts(37, 16, 5):
            for left in window_starts(45, 16, 5):
                window = image[None, :, top : top + 16, left : left + 16]
                probs = task(task.views.normalise(window)).softmax(dim=1)[0]
                total[:, top : top + 16, left : left + 16] += (
                    probs[:, None, None] * weights
                )
                weight[top : top + 16, left : left + 16] += weights
    blended = (total / weight).numpy()
    expected = blended.argmax(axis=0).astype(np.uint8)
    expected[30:, 40:] = NODATA_CLASS
    blended[:, 30:, 40:] = np.nan
    with rasterio.open(output) as src:
        # Batches of 3 windows against one at a time: float32 rounding may differ.
        clear = assert_same_classes(src.read(1), expected, blended, margin=1e-4)
    assert clear > 0.95
    with rasterio.open(tmp_path / 'map_probabilities.tif') as src:
        probabilities = src.read()
        assert src.count == 4
    np.testing.assert_allclose(probabilities[:, :30], blended[:, :30], atol=2e-3)
    assert np.isnan(probabilities[:, 30:, 40:]).all()


def test_map_a_real_scene_crop_end_to_end(scene_crop, s2_checkpoint, tmp_path, capsys):
    output = tmp_path / 'out' / 'map.tif'
    args = ['map', str(s2_checkpoint), str(scene_crop), '-o', str(output)]
    extras = ['--probabilities', 'uint8', '--quicklook', 'true', '--polygons', 'true']
    assert main([*args, *extras]) == 0
    with rasterio.open(output.with_suffix('.png')) as png:
        assert png.count >= 3
        assert png.width > png.height
    polygons = gpd.read_file(output.with_suffix('.gpkg'), layer='classes')
    assert polygons.crs.to_epsg() == 32618
    assert set(polygons['class']) <= {'ocean', 'marsh', 'forest'}
    # The polygons tile the mapped area exactly.
    assert polygons.area.sum() == pytest.approx(2580.0 * 2580.0)
    assert 'Mapped T18SVG_20160112 (0.07 Mpx' in capsys.readouterr().out
    with rasterio.open(output) as src:
        assert src.crs.to_epsg() == 32618
        assert src.transform.c == 441000.0
        assert src.transform.f == 4166040.0
        assert src.res == (10.0, 10.0)
        assert src.shape == (258, 258)
        assert src.dtypes == ('uint8',)
        assert src.nodata == NODATA_CLASS
        assert src.profile['tiled']
        assert src.colormap(1)[0][:3] == (8, 48, 107)  # ocean
        assert src.colormap(1)[2][:3] == (0, 68, 27)  # forest
        assert src.tags(1)['CLASS_1'] == 'marsh'
        assert set(np.unique(src.read(1))) <= {0, 1, 2}
    with rasterio.open(output.with_name('map_probabilities.tif')) as src:
        assert src.count == 3
        assert src.descriptions == ('ocean', 'marsh', 'forest')
        probabilities = src.read().astype(int).sum(axis=0)
        assert np.abs(probabilities - 254).max() <= 2
    # Refusals: one line, exit 2, and the existing map is left as it is.
    before = output.read_bytes()
    assert main(args) == 2
    assert main([*args, '--overwrite', 'true', '--stride', '0']) == 2
    assert main([*args, '--overwrite', 'true', '--chip_size', '512']) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].endswith('map.tif: exists; pass --overwrite to replace it')
    assert errors[1] == (
        'geossl: error: stride: is 0; it must be in 1..chip size (32) so that '
        'windows cover every pixel'
    )
    assert 'is 258 x 258 pixels, smaller than the chip size 512' in errors[2]
    for option, value, problem in (
        ('--device', 'cuda:x', "device: 'cuda:x' is not like cuda:0"),
        ('--devices', '0', 'devices: is 0; it must be > 0'),
        ('--workers', '-1', 'workers: is -1; it must be >= 0'),
    ):
        assert main([*args, '--overwrite', 'true', option, value]) == 2
        assert capsys.readouterr().err.strip() == f'geossl: error: {problem}'
    assert output.read_bytes() == before
    assert sorted(p.name for p in output.parent.iterdir()) == [
        'map.gpkg',
        'map.png',
        'map.tif',
        'map_probabilities.tif',
    ]


def test_unsafe_or_foreign_checkpoints_are_refused(tmp_path, capsys):
    garbage = tmp_path / 'garbage.ckpt'
    garbage.write_bytes(b'not a checkpoint')
    pickled = tmp_path / 'pickled.ckpt'
    torch.save({'hyper_parameters': {'x': np.dtype('float32').type}}, pickled)
    foreign = tmp_path / 'foreign.ckpt'
    torch.save({'state_dict': {}}, foreign)
    text = tmp_path / 'junk.ckpt'
    text.write_text('junk\n')  # torch's unpickler raises a KeyError for these bytes
    for path, problem in (
        (garbage, 'cannot be read as a safe checkpoint'),
        (text, 'cannot be read as a safe checkpoint'),
        (pickled, 'holds pickled code, which geossl never runs'),
        (foreign, 'is not a geossl checkpoint'),
    ):
        assert (
            main(['map', str(path), str(tmp_path), '-o', str(tmp_path / 'm.tif')]) == 2
        )
        assert problem in capsys.readouterr().err


def test_two_ddp_processes_write_the_same_map_as_one(
    scene_crop, s2_checkpoint, tmp_path
):
    args = [str(s2_checkpoint), str(scene_crop), '--probabilities', 'float16']
    assert main(['map', *args, '-o', str(tmp_path / 'one.tif'), '--workers', '1']) == 0
    # DDP starts its processes by running the command again, so run it as one.
    ddp = ['--devices', '2', '--device', 'cpu', '-o', str(tmp_path / 'ddp.tif')]
    subprocess.run(
        [sys.executable, '-m', 'geossl.cli', 'map', *args, *ddp],
        check=True,
        timeout=300,
    )
    for name in ('{}.tif', '{}_probabilities.tif'):
        with (
            rasterio.open(tmp_path / name.format('one')) as one,
            rasterio.open(tmp_path / name.format('ddp')) as ddp,
        ):
            # NaN nodata (float probabilities) never compares equal.
            assert {**ddp.profile, 'nodata': 0} == {**one.profile, 'nodata': 0}
            assert ddp.nodata == one.nodata or np.isnan([ddp.nodata, one.nodata]).all()
            assert ddp.tags(1) == one.tags(1)
    # Each process batches its own rows of windows with its share of the cores, so
    # float32 rounding may differ from one process's: by at most one float16 step
    # in the probabilities, and so in the class only where two classes nearly tie.
    with (
        rasterio.open(tmp_path / 'one_probabilities.tif') as one,
        rasterio.open(tmp_path / 'ddp_probabilities.tif') as ddp,
    ):
        probabilities = one.read()
        np.testing.assert_allclose(ddp.read(), probabilities, rtol=0, atol=2**-11)
    with (
        rasterio.open(tmp_path / 'one.tif') as one,
        rasterio.open(tmp_path / 'ddp.tif') as ddp,
    ):
        clear = assert_same_classes(ddp.read(1), one.read(1), probabilities, 2e-3)
    assert clear > 0.95
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'ddp.tif',
        'ddp_probabilities.tif',
        'one.tif',
        'one_probabilities.tif',
    ]


def test_map_several_sources_into_a_folder(scene_crop, s2_checkpoint, tmp_path, capsys):
    data = random_chip(bands=13, size=40, seed=1) + 1.0
    multiband = write_raster(tmp_path / 'tile.tif', data, descriptions=S2_BANDS)
    output = tmp_path / 'maps'
    args = ['map', str(s2_checkpoint), str(scene_crop), str(multiband)]
    assert main([*args, '-o', str(output)]) == 0
    assert sorted(p.name for p in output.iterdir()) == [
        'T18SVG_20160112.tif',
        'tile.tif',
    ]
    with rasterio.open(output / 'tile.tif') as src:
        assert src.shape == (40, 40)
    assert main([*args, str(scene_crop), '-o', str(output)]) == 2
    assert main([*args, '-o', str(tmp_path / 'map.tif')]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('geossl: error')]
    assert errors[0].endswith(
        'scene T18SVG_20160112 is also in '
        + str(sorted(scene_crop.iterdir())[0])
        + '; scene names must differ'
    )
    assert errors[1].endswith('map.tif: must be a folder: the sources hold 2 scenes')


def test_unnamed_bands_are_read_in_the_model_order_with_a_warning(tmp_path):
    checkpoint = save_checkpoint(
        tmp_path / 'model.ckpt',
        num_classes=2,
        in_channels=3,
        data={'band_names': ['r', 'g', 'n']},
        chip_size=16,
        model='resnet10t',
    )
    mapper = SceneMapper(load_task(checkpoint), progress=False)
    data = random_chip(bands=3, size=20, seed=2) + 1.0
    (named,) = find_scenes(write_raster(tmp_path / 'a.tif', data, descriptions='rgn'))
    (unnamed,) = find_scenes(write_raster(tmp_path / 'b.tif', data))
    mapper.map_scene(named, tmp_path / 'named.tif')
    with pytest.warns(UserWarning, match=r"no names; reading them as the model's r,"):
        mapper.map_scene(unnamed, tmp_path / 'unnamed.tif')
    with (
        rasterio.open(tmp_path / 'named.tif') as a,
        rasterio.open(tmp_path / 'unnamed.tif') as b,
    ):
        np.testing.assert_array_equal(a.read(), b.read())


def test_a_model_of_unnamed_bands_refuses_named_scenes_naming_the_way_out(
    tmp_path, capsys
):
    checkpoint = save_checkpoint(
        tmp_path / 'model.ckpt',
        num_classes=2,
        in_channels=3,
        data={'band_names': ['1', '2', '3']},
        chip_size=16,
        model='resnet10t',
    )
    data = random_chip(bands=3, size=20, seed=2) + 1.0
    scene = write_raster(tmp_path / 'a.tif', data, descriptions=['B04', 'B03', 'B02'])
    assert (
        main(['map', str(checkpoint), str(scene), '-o', str(tmp_path / 'm.tif')]) == 2
    )
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'has bands B04, B03, B02 but the model needs 1, 2, 3' in error
    assert error.endswith(
        'the model was trained on rasters that name no bands: fit it with '
        '--data.band_names naming them to map named scenes'
    )
    assert not (tmp_path / 'm.tif').exists()


def test_a_killed_map_leaves_only_work_in_progress_that_the_next_run_removes(
    scene_crop, s2_checkpoint, tmp_path
):
    output = tmp_path / 'map.tif'
    command = [sys.executable, '-m', 'geossl.cli', 'map', str(s2_checkpoint)]
    command += [str(scene_crop), '-o', str(output), '--batch_size', '4']
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob('.map.tif.partial-*.part0.tif')):
        assert process.poll() is None, 'map ended before it wrote anything'
        assert time.monotonic() < deadline, 'map wrote nothing in 5 minutes'
        time.sleep(0.01)
    # At once: the part file appears when mapping starts, and the scene's windows
    # take far longer than this loop's 10 ms to classify.
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left
    assert all(name.startswith('.map.tif.partial-') for name in left), left

    assert main(['map', *command[4:]]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['map.tif']
    reference = tmp_path / 'reference' / 'map.tif'
    assert main(['map', *command[4:6], '-o', str(reference), '--batch_size', '4']) == 0
    with rasterio.open(output) as rerun, rasterio.open(reference) as whole:
        np.testing.assert_array_equal(rerun.read(), whole.read())


def test_test_time_augmentation_maps_the_averaged_probabilities(
    scene_crop, s2_checkpoint, tmp_path, capsys
):
    task = load_task(s2_checkpoint)
    (scene,) = find_scenes(scene_crop)
    maps = {}
    for tta in ('none', 'dihedral'):
        output = tmp_path / f'{tta}.tif'
        args = ['map', str(s2_checkpoint), str(scene_crop), '-o', str(output)]
        assert main([*args, '--tta', tta, '--probabilities', 'float16']) == 0
        with rasterio.open(output.with_name(f'{tta}_probabilities.tif')) as src:
            maps[tta] = src.read()
    # The same windows, each averaged over its 8 symmetries, one by one.
    mapper = SceneMapper(task, tta='dihedral', progress=False)
    corner = mapper.raster(scene).read_chip((441000.0, 4165720.0, 441320.0, 4166040.0))
    window = task.views.normalise(torch.from_numpy(corner[0])[None])
    with torch.no_grad():
        turns = [torch.rot90(window, k, dims=(-2, -1)) for k in range(4)]
        moved = turns + [turn.flip(-1) for turn in turns]
        expected = torch.cat([task.probabilities(m) for m in moved]).mean(dim=0)
    # The top-left pixel is covered by the first window alone.
    np.testing.assert_allclose(maps['dihedral'][:, 0, 0], expected, atol=2e-3)
    assert np.abs(maps['dihedral'] - maps['none']).max() > 1e-3
    assert (
        main(
            ['map', str(s2_checkpoint), str(scene_crop), '-o', 'x.tif', '--tta', 'all']
        )
        == 2
    )
    assert 'tta' in capsys.readouterr().err


def test_clouds_are_nodata_and_windows_centred_on_them_are_not_classified(
    tmp_path, capsys
):
    data = random_chip(bands=3, size=48, seed=4)
    scene_path = write_raster(
        tmp_path / 'scene.tif', data, descriptions=['r', 'g', 'n']
    )
    checkpoint = small_checkpoint(tmp_path / 'model.ckpt', num_classes=3)
    # SCL at 20 m: vegetation, and cloud (9) over pixels 8-23 of the 10 m grid.
    scl = np.full((1, 24, 24), 4, dtype=np.uint8)
    scl[0, 4:12, 4:12] = 9
    mask = write_raster(tmp_path / 'scl.tif', scl, res=20.0)
    maps = {}
    for name, extra in (('clear', []), ('masked', ['--mask', str(mask)])):
        output = tmp_path / f'{name}.tif'
        args = ['map', str(checkpoint), str(scene_path), '-o', str(output)]
        assert main([*args, '--stride', '8', '--probabilities', 'float16', *extra]) == 0
        with rasterio.open(output.with_name(f'{name}_probabilities.tif')) as src:
            maps[name] = src.read()
    masked = np.isnan(maps['masked'][0])
    cloud = np.zeros((48, 48), dtype=bool)
    cloud[8:24, 8:24] = True
    # Windows of 16 px start every 8 px; those starting at rows and columns 0 or 8
    # are centred on the cloud, so pixels 0-15 that only they cover are nodata too.
    assert masked[cloud].all()
    assert masked[:16, :16].all()
    assert masked.sum() == 16 * 16 + 16 * 16 - 8 * 8  # the cloud and pixels 0-15
    # Pixels whose every window is centred off the cloud are mapped as without it.
    far = np.zeros((48, 48), dtype=bool)
    far[32:, :] = far[:, 32:] = True
    np.testing.assert_array_equal(maps['masked'][:, far], maps['clear'][:, far])
    assert (~masked[far]).all()
    capsys.readouterr()
    args = ['map', str(checkpoint), str(scene_path), '-o', str(tmp_path / 'x.tif')]
    assert main([*args, '--mask', str(mask), '--mask_values', '[9, 256]']) == 2
    assert 'mask_values: is [9, 256]' in capsys.readouterr().err
    assert main([*args, '--mask_values', '[9]']) == 2
    assert 'mask_values: no scene has a mask' in capsys.readouterr().err
    assert not (tmp_path / 'x.tif').exists()


def test_scenes_of_either_baseline_map_the_same_and_the_model_keeps_the_rule(
    tmp_path,
):
    surface = random_chip(bands=3, size=32, seed=6) // 4 + 1
    names = ['r', 'g', 'n']
    scenes = {
        'old': write_raster(tmp_path / 'old.tif', surface, descriptions=names),
        'new': write_raster(
            tmp_path / 'new.tif',
            surface + 1000,
            descriptions=names,
            tags={'BOA_ADD_OFFSET': '-1000'},
        ),
        'untagged': write_raster(
            tmp_path / 'untagged.tif', surface + 1000, descriptions=names
        ),
    }
    models = {
        'declared': small_checkpoint(tmp_path / 'a.ckpt', num_classes=3),
        # Trained on data that declares nothing, with --data.reflectance_offset.
        'given': small_checkpoint(
            tmp_path / 'b.ckpt', num_classes=3, data={'reflectance_offset': -1000.0}
        ),
    }

    def probabilities(model, scene):
        output = tmp_path / f'{model}-{scene}.tif'
        args = ['map', str(models[model]), str(scenes[scene]), '-o', str(output)]
        assert main([*args, '--probabilities', 'float16']) == 0
        with rasterio.open(output.with_name(f'{output.stem}_probabilities.tif')) as src:
            return src.read()

    old = probabilities('declared', 'old')
    np.testing.assert_array_equal(probabilities('declared', 'new'), old)
    np.testing.assert_array_equal(probabilities('given', 'untagged'), old)
    # A scene that declares its own offset is read by it, whatever the model's.
    np.testing.assert_array_equal(probabilities('given', 'new'), old)
    assert not np.array_equal(probabilities('declared', 'untagged'), old)
