import json

import numpy as np
import onnx
import onnxruntime
import torch

from geossl.cli import main
from geossl.data.scene import SceneDataset
from geossl.inference.checkpoint import load_task
from tests.inference.conftest import S2_BANDS


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
