import json

import numpy as np
import onnx
import onnxruntime
import rasterio
import torch

from geossl.cli import main
from geossl.data.scene import SceneDataset
from geossl.data.scene_files import find_scenes
from geossl.inference.checkpoint import load_task
from geossl.models.memory_format import use_memory_format
from tests.conftest import write_raster
from tests.inference.conftest import S2_BANDS, save_checkpoint


def test_export_matches_pytorch_on_real_chips(
    scene_crop, s2_checkpoint, tmp_path, capsys
):
    output = tmp_path / 'model.onnx'
    assert main(['export', str(s2_checkpoint), '-o', str(output)]) == 0
    assert 'max difference' in capsys.readouterr().out
    model = onnx.load(output)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(metadata['geossl.class_names']) == ['ocean', 'marsh', 'forest']
    assert json.loads(metadata['geossl.band_names']) == S2_BANDS
    assert metadata['geossl.chip_size'] == '32'
    # Real chips of the scene, raw values, any batch size.
    chips = SceneDataset(scene_crop, chip_size=32)
    images = torch.stack([chips[i]['image'] for i in range(5)])
    session = onnxruntime.InferenceSession(str(output))
    exported = session.run(None, {'image': images.numpy()})[0]
    task = load_task(s2_checkpoint)
    with torch.no_grad():
        expected = task(task.views.normalise(images)).softmax(dim=1).numpy()
    # onnxruntime's kernels sum in another order than PyTorch's, and both depend
    # on the CPU: probabilities agree within export_onnx's own check (1e-4).
    np.testing.assert_allclose(exported, expected, rtol=0, atol=1e-4)
    assert main(['export', str(s2_checkpoint), '-o', str(output)]) == 2
    assert 'exists; pass --overwrite' in capsys.readouterr().err


def test_deepness_export_is_a_segmentor_deepness_reads_and_matches_the_map(
    scene_crop, s2_checkpoint, tmp_path, capsys
):
    output = tmp_path / 'deepness.onnx'
    command = ['export', str(s2_checkpoint), '-o', str(output), '--format', 'deepness']
    assert main(command) == 0
    session = onnxruntime.InferenceSession(str(output))
    metadata = session.get_modelmeta().custom_metadata_map
    # Every key as Deepness reads it (its ModelBase.get_metadata_*: json.loads).
    assert json.loads(metadata['model_type']) == 'Segmentor'
    names = json.loads(metadata['class_names'])
    assert sorted(names.items(), key=lambda kv: int(kv[0])) == [
        ('0', 'ocean'),
        ('1', 'marsh'),
        ('2', 'forest'),
    ]
    assert json.loads(metadata['resolution']) == 1000.0  # cm per pixel
    assert json.loads(metadata['tiles_size']) == 32
    assert json.loads(metadata['tiles_overlap']) == 50
    mean = json.loads(metadata['standardization_mean'])
    std = json.loads(metadata['standardization_std'])
    assert len(mean) == len(std) == 13
    assert json.loads(metadata['seg_thresh']) == 0.0
    (image_input,) = session.get_inputs()
    assert image_input.shape[1:] == [13, 32, 32]
    # A one-window scene: its map's probabilities are that window's everywhere.
    chip = SceneDataset(scene_crop, chip_size=32)[0]['image'].numpy()
    (scene,) = find_scenes(scene_crop)
    window = write_raster(
        tmp_path / 'window.tif',
        chip.astype(np.uint16),
        origin=(scene.bounds[0], scene.bounds[3]),
        descriptions=S2_BANDS,
    )
    mapped = tmp_path / 'map.tif'
    args = ['map', str(s2_checkpoint), str(window), '-o', str(mapped)]
    assert main([*args, '--probabilities', 'float16']) == 0
    with rasterio.open(tmp_path / 'map_probabilities.tif') as src:
        expected = src.read()
    # Deepness's preprocessing of the same tile: H x W x C, / 255, standardised.
    tile = chip.astype(np.uint16).transpose(1, 2, 0)[None].astype(np.float32) / 255
    tile = (tile - np.array(mean)) / np.array(std)
    dense = session.run(
        None, {image_input.name: tile.transpose(0, 3, 1, 2).astype(np.float32)}
    )[0]
    assert dense.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(dense[0], expected, rtol=0, atol=2e-3)
    assert (dense[0].argmax(axis=0) == expected.argmax(axis=0)).all()
    capsys.readouterr()


def test_export_of_a_channels_last_model_matches_it_laid_out_channels_first(tmp_path):
    checkpoint = save_checkpoint(
        tmp_path / 'efficientnet.ckpt',
        num_classes=3,
        in_channels=4,
        data={'band_names': ['B02', 'B03', 'B04', 'B08']},
        chip_size=32,
        model='test_efficientnet',
    )
    task = load_task(checkpoint)  # on the CPU: channels-last weights
    stem = task.student.backbone.conv_stem.weight
    assert stem.is_contiguous(memory_format=torch.channels_last)
    output = tmp_path / 'model.onnx'
    assert main(['export', str(checkpoint), '-o', str(output)]) == 0
    torch.manual_seed(0)
    images = torch.rand(5, 4, 32, 32) * 3000
    session = onnxruntime.InferenceSession(str(output))
    exported = session.run(None, {'image': images.numpy()})[0]
    use_memory_format(task, torch.device('cpu'), 'contiguous')
    assert task.student.backbone.conv_stem.weight.is_contiguous()
    with torch.no_grad():
        expected = task.probabilities(task.views.normalise(images)).numpy()
    np.testing.assert_allclose(exported, expected, rtol=0, atol=1e-4)
