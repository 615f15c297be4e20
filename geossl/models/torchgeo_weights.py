"""Checkpoints as data: read them safely, and take a backbone's weights out of one.

Every checkpoint geossl reads is read with ``torch.load(weights_only=True)``, which
refuses pickled code: a checkpoint is data, never a program.

Initial weights come as :class:`BackboneWeights`: a timm model's state dict, the
bands its first layer takes, and the input normalisation it was trained with. They
are read from TorchGeo's weights by name (through torch.hub's cache), from timm's
hub (``pretrained``), from a state-dict file, or from a checkpoint of
``geossl fit`` (the student's backbone), of ``geossl pretrain`` (the online network
of every method) or of TorchGeo's own SimCLR, MoCo and BYOL tasks, found by the
prefix its weights carry there.
"""

import difflib
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import safetensors.torch
import timm
import torch
import torch.hub
import torchgeo.models
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from geossl.data.bands import are_numbered
from geossl.errors import GeosslInputError, first_line, reading

#: Where each kind of checkpoint keeps its backbone (the prefix of its weights).
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.', 'model.backbone.model.')

#: The hyperparameter naming the timm model (geossl's and TorchGeo's; older geossl's).
BACKBONE_NAME_KEYS = ('model', 'backbone')

#: ImageNet's bands (red, green, blue) under their Sentinel-2 names.
RGB_BANDS = ('B4', 'B3', 'B2')

#: Colour names of bands, as RGB data may name them.
_COLOUR_BANDS = {'R': 'B4', 'RED': 'B4', 'G': 'B3', 'GREEN': 'B3'}
_COLOUR_BANDS |= {'B': 'B2', 'BLUE': 'B2'}

#: Where initial weights come from, TorchGeo's by name, ImageNet's (timm's hub or
#: a timm state dict for RGB), or a checkpoint (geossl's or TorchGeo's tasks').
WeightsKind = Literal['torchgeo', 'imagenet', 'checkpoint', 'state_dict']


def full_scale(dtype: str | None) -> float:
    """The value that stands for 1 in data of a type: what 0-1 inputs are scaled by.

    Args:
        dtype: the pixels' type as stored (``uint8``, ``uint16``, ...); None if
            unknown.

    Returns:
        255 for 8-bit data; 10000 for other integers (Sentinel-2's reflectance
        quantification: DN = 10000 x reflectance) and unknown types; 1 for floats.
    """
    if dtype is None:
        return 10000.0
    kind = np.dtype(dtype)
    if kind == np.uint8:
        return 255.0
    return 10000.0 if np.issubdtype(kind, np.integer) else 1.0


@dataclass(frozen=True)
class InputNormalisation:
    """The input normalisation weights were trained with, ``(x - mean) / std``.

    Attributes:
        mean: one value for every band, or one per band of ``bands``.
        std: the same for the standard deviation.
        bands: the bands of the values; None for one value for every band.
        relative: the values are fractions of the data's :func:`full_scale`
            (ImageNet's rule, on 0-1 inputs); else they are in the data's own units
            (SSL4EO-S12's DN / 10000: mean 0, std 10000).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bands: tuple[str, ...] | None = None
    relative: bool = False

    def statistics(
        self, band_names: Sequence[str], dtype: str | None
    ) -> tuple[Tensor, Tensor]:
        """The per-band mean and standard deviation for data, in its raw units.

        Bands are matched by name as the first layer's kernels are
        (:func:`band_sources`): a band the weights lack takes the mean of theirs.

        Args:
            band_names: the data's bands, in order.
            dtype: the data's pixel type, for relative values.

        Returns:
            The means and standard deviations, one per band of the data.
        """
        scale = full_scale(dtype) if self.relative else 1.0

        def per_band(values: tuple[float, ...]) -> Tensor:
            given = torch.tensor(values, dtype=torch.float32)
            if self.bands is None:
                return given.expand(len(band_names)).clone()
            with warnings.catch_warnings():  # The first layer's matching says so.
                warnings.simplefilter('ignore')
                sources = band_sources(self.bands, band_names, 'the weights')
            if sources is None:
                return given
            return torch.stack(
                [given.mean() if i is None else given[i] for i in sources]
            )

        return per_band(self.mean) * scale, per_band(self.std) * scale


@dataclass(frozen=True)
class BackboneWeights:
    """A timm model's initial weights and what they expect of the input.

    Attributes:
        model: the timm model name they are for (None where a file does not say).
        state: the state dict.
        kind: where they come from (see :data:`WeightsKind`).
        bands: the bands of the first layer's input channels; None if unknown.
        normalisation: the input normalisation they were trained with; None if
            unknown.
    """

    model: str | None
    state: dict[str, Tensor]
    kind: WeightsKind
    bands: tuple[str, ...] | None = None
    normalisation: InputNormalisation | None = None


def read_checkpoint(
    path: str | Path, map_location: str | torch.device | Callable | None = None
) -> Any:
    """The contents of a checkpoint file, refusing anything but data.

    Args:
        path: the file.
        map_location: where tensors go, as for :func:`torch.load`.

    Returns:
        The checkpoint.

    Raises:
        GeosslInputError: if the file is missing, corrupt or holds pickled code.
    """
    path = Path(path)
    if not path.exists():
        raise GeosslInputError(path, 'does not exist')
    with reading(path, 'a safe checkpoint'):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            # torch names the refused code on a line of its own, after advice.
            lines = str(error).splitlines()
            if code := next((line.strip() for line in lines if 'GLOBAL' in line), None):
                raise GeosslInputError(
                    path, f'holds pickled code, which geossl never runs ({code})'
                ) from None
            raise


def read_backbone(path: str | Path, model: str | None = None) -> BackboneWeights:
    """The backbone weights a file holds.

    Args:
        path: a ``.ckpt`` of ``geossl fit``, ``geossl pretrain`` or a TorchGeo
            self-supervised task; or a state dict of a timm model (``.pth``,
            ``.pt``, or ``.safetensors``), taken to be ``model``'s.
        model: the timm model a plain state dict is for.

    Returns:
        The weights (the backbone's own parameter names). A geossl checkpoint's
        carry its bands and the normalisation it trained with.

    Raises:
        GeosslInputError: if the file is unsafe or corrupt, or holds no backbone.
    """
    if Path(path).suffix == '.safetensors':
        if not Path(path).exists():
            raise GeosslInputError(path, 'does not exist')
        with reading(path, 'safetensors'):
            return BackboneWeights(
                model, safetensors.torch.load_file(path), 'state_dict'
            )
    checkpoint = read_checkpoint(path, 'cpu')
    if not isinstance(checkpoint, dict):
        raise GeosslInputError(path, 'holds no state dict and no checkpoint')
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return BackboneWeights(model, dict(checkpoint), 'state_dict')
    if not isinstance(checkpoint.get('state_dict'), dict):
        raise GeosslInputError(
            path, 'is neither a state dict nor a Lightning checkpoint (no state_dict)'
        )
    hparams = checkpoint.get('hyper_parameters') or {}
    name = next((hparams[key] for key in BACKBONE_NAME_KEYS if key in hparams), None)
    state = checkpoint['state_dict']
    for prefix in BACKBONE_PREFIXES:
        weights = {
            key.removeprefix(prefix): value
            for key, value in state.items()
            if key.startswith(prefix)
        }
        if weights and isinstance(name, str):
            bands = hparams.get('band_names')
            return BackboneWeights(
                name,
                weights,
                'checkpoint',
                tuple(bands) if isinstance(bands, list) else None,
                _trained_normalisation(state),
            )
    raise GeosslInputError(
        path,
        'holds no backbone (expected a checkpoint of geossl fit or pretrain, or of '
        "TorchGeo's SimCLR, MoCo or BYOL)",
    )


def _trained_normalisation(state: Mapping[str, Any]) -> InputNormalisation | None:
    """The normalisation a geossl checkpoint's task applied (its views' buffers)."""
    mean, std = state.get('views.mean'), state.get('views.std')
    if not isinstance(mean, Tensor) or not isinstance(std, Tensor):
        return None
    return InputNormalisation(
        tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())
    )


def _normalise_transform(transforms: object) -> InputNormalisation | None:
    """The ``Normalize`` among TorchGeo weights' transforms, in raw units."""
    modules = transforms.modules() if isinstance(transforms, nn.Module) else []
    for module in modules:
        mean, std = getattr(module, 'mean', None), getattr(module, 'std', None)
        if mean is not None and std is not None:
            mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
            std = torch.as_tensor(std, dtype=torch.float64).flatten()
            return InputNormalisation(tuple(mean.tolist()), tuple(std.tolist()))
    return None


def imagenet_weights(
    state: dict[str, Tensor], backbone: nn.Module, model: str
) -> BackboneWeights:
    """A timm model's ImageNet weights: RGB bands, the model's ImageNet normalisation.

    Args:
        state: the weights.
        backbone: the timm model (its ``pretrained_cfg`` has the mean and std).
        model: its name.

    Returns:
        The weights, for R, G, B, with the normalisation (relative: on 0-1 inputs).
    """
    config = backbone.pretrained_cfg
    normalisation = InputNormalisation(
        tuple(config.get('mean', timm.data.IMAGENET_DEFAULT_MEAN)),
        tuple(config.get('std', timm.data.IMAGENET_DEFAULT_STD)),
        RGB_BANDS,
        relative=True,
    )
    return BackboneWeights(model, state, 'imagenet', RGB_BANDS, normalisation)


def timm_pretrained_weights(model: str) -> BackboneWeights:
    """The pretrained weights timm has for a model (downloaded on first use).

    Args:
        model: the timm model name.

    Returns:
        Its ImageNet weights (see :func:`imagenet_weights`).

    Raises:
        GeosslInputError: if the download fails.
    """
    try:
        network = timm.create_model(model, pretrained=True, num_classes=0)
    except Exception as error:
        raise GeosslInputError(
            'weights',
            f"timm's weights of {model} could not be loaded ({first_line(error)})",
        ) from None
    return imagenet_weights(network.state_dict(), network, model)


def is_weights_name(text: str) -> bool:
    """Whether a ``weights`` value names TorchGeo weights, not a file.

    Args:
        text: e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.

    Returns:
        True for ``<Model>_Weights.<MEMBER>`` that is no existing file.
    """
    return '_Weights.' in text and not Path(text).exists()


def torchgeo_weights_names() -> list[str]:
    """Every weights name TorchGeo's :func:`~torchgeo.models.get_weight` resolves.

    Returns:
        The names, e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.
    """
    enums = [
        value
        for key, value in vars(torchgeo.models).items()
        if key.endswith('_Weights')
        and isinstance(value, type)
        and issubclass(value, WeightsEnum)
    ]
    return sorted(str(member) for enum in enums for member in enum)


def read_torchgeo_weights(name: str) -> tuple[WeightsEnum, Any]:
    """TorchGeo's weights by name, and the file's contents.

    The file comes through torch.hub's cache (``$TORCH_HOME/hub/checkpoints``),
    downloaded on first use, as TorchGeo's own ``get_state_dict`` does.

    Args:
        name: a :class:`~torchvision.models.WeightsEnum` member's full name.

    Returns:
        The weights' member (its ``meta`` and ``transforms``) and the contents.

    Raises:
        GeosslInputError: if no weights have that name, the download fails, or the
            cached file cannot be read safely.
    """
    try:
        weights = torchgeo.models.get_weight(name)
    except ValueError:
        close = difflib.get_close_matches(name, torchgeo_weights_names(), n=3)
        hint = f'; did you mean {", ".join(close)}?' if close else ''
        raise GeosslInputError(name, f'is not a TorchGeo weights name{hint}') from None
    file = Path(torch.hub.get_dir()) / 'checkpoints' / Path(weights.url).name
    options = {'progress': True, 'map_location': 'cpu', 'weights_only': True}
    if file.exists():
        with reading(file, 'a safe checkpoint'):
            return weights, weights.get_state_dict(**options)
    try:
        return weights, weights.get_state_dict(**options)
    except Exception as error:
        raise GeosslInputError(
            name,
            f'could not be downloaded ({first_line(error)}); with no internet, '
            f'put the file from {weights.url} at {file}',
        ) from None


def read_torchgeo_backbone(name: str) -> BackboneWeights:
    """TorchGeo's backbone weights by name, with their bands and normalisation.

    The bands are the weights' ``meta['bands']``; the normalisation is the
    ``Normalize`` of their ``transforms`` (SSL4EO-S12's: mean 0, std 10000).

    Args:
        name: e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.

    Returns:
        The weights.

    Raises:
        GeosslInputError: as :func:`read_torchgeo_weights`.
    """
    weights, state = read_torchgeo_weights(name)
    bands = weights.meta.get('bands')
    return BackboneWeights(
        weights.meta['model'],
        state,
        'torchgeo',
        tuple(bands) if bands else None,
        _normalise_transform(weights.transforms),
    )


#: The name of the weights of SatCLIP's location encoder in TorchGeo.
SATCLIP_WEIGHTS = 'SatCLIP_Weights.SATCLIP_VIT16_L40'


def read_satclip(
    name: str = SATCLIP_WEIGHTS,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """SatCLIP's pretrained location encoder: its sizes and weights.

    SatCLIP's releases are Lightning checkpoints of the whole model; the location
    encoder's network is under ``model.location.nnet.`` (as TorchGeo's
    :func:`~torchgeo.models.satclip` reads it).

    Args:
        name: TorchGeo's weights name.

    Returns:
        The :class:`~torchgeo.models.SatCLIP` arguments of the weights'
        ``meta``, and the state dict of the encoder.

    Raises:
        GeosslInputError: if the weights cannot be read, or hold no location
            encoder.
    """
    weights, checkpoint = read_torchgeo_weights(name)
    prefix = 'model.location.'
    state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    encoder = {
        key.removeprefix(prefix): value
        for key, value in (state or {}).items()
        if key.startswith(prefix + 'nnet.')
    }
    if not encoder:
        raise GeosslInputError(name, f'holds no location encoder ({prefix}nnet.*)')
    sizes = ('legendre_polys', 'capacity', 'embed_dim', 'num_hidden_layers')
    return {key: weights.meta[key] for key in sizes}, encoder


def read_initial_weights(path: str | Path, model: str) -> BackboneWeights:
    """What ``weights`` names: TorchGeo's weights, a checkpoint or a file.

    Args:
        path: TorchGeo weights by name (see :func:`read_torchgeo_backbone`), a
            checkpoint or a state-dict file of the model (see :func:`read_backbone`).
        model: the timm model a plain state dict is for.

    Returns:
        The weights.
    """
    if is_weights_name(str(path)):
        return read_torchgeo_backbone(str(path))
    return read_backbone(path, model)


def canonical_band(name: str) -> str:
    """A band's name as weights and data may both spell it: B01 = B1, B8a = B8A.

    Colour names are RGB's Sentinel-2 bands: red (R) = B4, green (G) = B3, blue
    (B) = B2.

    Args:
        name: e.g. ``B01``, ``B8a``, ``red``.

    Returns:
        ``B1``, ``B8A``, ``B4``; names that are not Sentinel-2's, upper-cased.
    """
    name = name.strip().upper()
    if match := re.fullmatch(r'B0*(\d+)(A?)', name):
        return f'B{match[1]}{match[2]}'
    return _COLOUR_BANDS.get(name, name)


def band_sources(
    weight_bands: Sequence[str], data_bands: Sequence[str], source: str | Path
) -> list[int | None] | None:
    """For each band of the data, the weights' band of the same name.

    Data whose bands have no names (1, 2, ...) and as many as the weights is taken
    in the weights' order, with a warning; weights whose bands have no names are
    not matched.

    Args:
        weight_bands: the weights' band order.
        data_bands: the data's band order.
        source: the weights, for errors.

    Returns:
        The weights' index of each data band (None for a band they lack), or None
        where there are no names to go by.

    Raises:
        GeosslInputError: if the data shares no band with the weights.
    """
    if are_numbered(weight_bands):
        return None
    weights = [canonical_band(band) for band in weight_bands]
    data = [canonical_band(band) for band in data_bands]
    if are_numbered(data_bands) and len(data) == len(weights):
        warnings.warn(
            f"the data's bands have no names; taking them as {source}'s "
            f'{", ".join(weight_bands)}, in that order',
            UserWarning,
            stacklevel=3,
        )
        return list(range(len(weights)))
    if not set(data) & set(weights):
        raise GeosslInputError(
            source,
            f'holds weights for bands {", ".join(weight_bands)}, none of which the '
            f'data has ({", ".join(data_bands)})',
        )
    return [weights.index(band) if band in weights else None for band in data]


def match_bands(
    kernel: Tensor,
    weight_bands: Sequence[str],
    data_bands: Sequence[str],
    source: str | Path,
) -> Tensor:
    """A first layer's kernel with its input channels in the data's band order.

    Each band of the data takes the weights' kernel of the band of the same name
    (:func:`band_sources`); bands the data lacks are dropped. A band the weights
    lack starts from the mean of the weights' kernels, and then the whole layer is
    scaled by (the weights' bands) / (the data's bands): timm's
    ``adapt_input_conv`` rule for RGB to N bands, which keeps the layer's response
    to a uniform image.

    Args:
        kernel: ``out x W x ...``, W the weights' bands.
        weight_bands: the weights' band order.
        data_bands: the data's band order.
        source: the weights, for errors.

    Returns:
        ``out x D x ...``, D the data's bands (the kernel as it is where there are
        no names to go by).

    Raises:
        GeosslInputError: if the data shares no band with the weights.
    """
    sources = band_sources(weight_bands, data_bands, source)
    if sources is None:
        return kernel
    mean = kernel.mean(dim=1)
    matched = torch.stack([mean if i is None else kernel[:, i] for i in sources], dim=1)
    if None in sources:
        matched = matched * (len(weight_bands) / len(data_bands))
    return matched


def first_layer_key(backbone: nn.Module) -> str:
    """The state-dict key of a timm model's first layer's kernel.

    Args:
        backbone: the timm model.

    Returns:
        e.g. ``conv1.weight`` (ResNet), ``patch_embed.proj.weight`` (ViT).
    """
    return f'{backbone.pretrained_cfg["first_conv"]}.weight'


def resample_position_embeddings(
    weights: dict[str, Tensor], backbone: nn.Module
) -> dict[str, Tensor]:
    """A vision transformer's position embeddings resampled to the backbone's grid.

    Weights trained on 224 px images hold a 14 x 14 grid of position embeddings;
    a model for 64 px chips has 4 x 4. The grid is resampled bicubically (timm's
    ``resample_abs_pos_embed``), the class and register tokens' kept as they are.

    Args:
        weights: the backbone's weights by name.
        backbone: the timm model they are for.

    Returns:
        The weights, ``pos_embed`` resampled where its grid differs.
    """
    expected = backbone.state_dict().get('pos_embed')
    given = weights.get('pos_embed')
    if expected is None or given is None or given.shape == expected.shape:
        return weights
    resampled = resample_abs_pos_embed(
        given,
        new_size=list(backbone.patch_embed.grid_size),
        num_prefix_tokens=backbone.num_prefix_tokens,
    )
    return {**weights, 'pos_embed': resampled}


def load_backbone_weights(
    backbones: Sequence[nn.Module],
    name: str,
    weights: BackboneWeights,
    source: str | Path,
    band_names: Sequence[str] | None = None,
) -> BackboneWeights:
    """Initialise backbones from weights read once, their first layer band-matched.

    A plain state dict whose first layer takes 3 bands is taken as ImageNet's RGB
    (:func:`imagenet_weights`), as timm's and most hubs' are.

    Args:
        backbones: the timm models to initialise (e.g. student's and teacher's).
        name: their timm model name.
        weights: the initial weights (see :func:`read_initial_weights`).
        source: where they came from, for errors.
        band_names: the data's bands, in order, to match the first layer to
            weights that name their bands.

    Returns:
        The weights as understood: their kind, bands and normalisation.

    Raises:
        GeosslInputError: if the weights are for another model, share no band
            with the data, or have other shapes (say, another number of bands).
    """
    if weights.model != name:
        raise GeosslInputError(
            source, f'holds a {weights.model} backbone, but the model is a {name}'
        )
    # A whole timm model's classifier has no place in a backbone.
    classifier = f'{backbones[0].pretrained_cfg.get("classifier")}.'
    state = {k: v for k, v in weights.state.items() if not k.startswith(classifier)}
    if extra := sorted(set(state) - set(backbones[0].state_dict())):
        raise GeosslInputError(
            source,
            f'holds {_first_names(extra)}, which a {name} does not have: are these '
            'weights for another model?',
        )
    state = resample_position_embeddings(state, backbones[0])
    key = first_layer_key(backbones[0])
    if weights.kind == 'state_dict' and key in state and state[key].shape[1] == 3:
        weights = imagenet_weights(weights.state, backbones[0], name)
    if weights.bands is not None and band_names is not None and key in state:
        state[key] = match_bands(state[key], weights.bands, band_names, source)
    for backbone in backbones:
        expected = backbone.state_dict()
        check_weights_fit(
            state, expected, source, 'it holds a backbone for another band count'
        )
        backbone.load_state_dict({k: state[k] for k in expected})
    return replace(weights, state={})


def _first_names(names: Sequence[str], count: int = 3) -> str:
    """The first few of a list of names, for an error line."""
    return ', '.join(names[:count]) + (' ...' if len(names) > count else '')


def check_weights_fit(
    weights: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    path: str | Path,
    reason: str,
) -> None:
    """Refuse weights that lack one of a model's, or have another shape.

    Args:
        weights: the checkpoint's weights by name.
        expected: the model's state dict.
        path: the checkpoint, for errors.
        reason: the likely cause, for errors.

    Raises:
        GeosslInputError: naming the first weights missing (up to three), or the
            first of another shape.
    """
    if missing := [name for name in expected if name not in weights]:
        raise GeosslInputError(path, f'has no {_first_names(missing)}: {reason}')
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise GeosslInputError(
                path,
                f'holds {name} of shape {tuple(weights[name].shape)} where the model '
                f'has {tuple(tensor.shape)}: {reason}',
            )
