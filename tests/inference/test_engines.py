import pytest
import torch

from geossl.cache import cache_dir
from geossl.errors import GeosslInputError
from geossl.inference.checkpoint import load_task
from geossl.inference.engines import (
    OnnxProbabilities,
    chosen_engine,
    pytorch_probabilities,
)
from geossl.inference.scene_mapper import SceneMapper


def test_auto_runs_onnxruntime_on_the_cpu_and_pytorch_on_a_gpu():
    assert chosen_engine('auto', 'cpu') == 'onnxruntime'
    assert chosen_engine('auto', 'cuda') == 'pytorch'
    assert chosen_engine('pytorch', 'cpu') == 'pytorch'
    assert chosen_engine('onnxruntime', 'auto') == 'onnxruntime'


def test_onnxruntime_gives_pytorchs_probabilities_from_one_export(
    s2_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv('GEOSSL_CACHE_DIR', str(tmp_path))
    task = load_task(s2_checkpoint)
    torch.manual_seed(0)
    windows = torch.rand(7, 13, 32, 32) * 3000
    with torch.no_grad():
        expected = pytorch_probabilities(task)(windows)
    onnx = OnnxProbabilities(task)
    torch.testing.assert_close(onnx(windows), expected, rtol=0, atol=1e-4)
    (exported,) = cache_dir('onnx').glob('*.onnx')
    written = exported.stat().st_mtime_ns
    # The same model again: the export is found, not made anew.
    OnnxProbabilities(load_task(s2_checkpoint))
    assert exported.stat().st_mtime_ns == written
    assert list(cache_dir('onnx').glob('*.onnx')) == [exported]


def test_an_unknown_engine_is_refused(s2_checkpoint):
    with pytest.raises(GeosslInputError, match='engine'):
        SceneMapper(load_task(s2_checkpoint), engine='tensorrt')
