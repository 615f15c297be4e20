"""Initial weights for a backbone: what they are, and how they are put into one.

Initial weights come as :class:`BackboneWeights`: a timm model's state dict, the
bands its first layer takes, and the input normalisation it was trained with.
Where they are read from is :mod:`geossl.models.weight_sources`;
:func:`load_backbone_weights` puts them into backbones, the first layer matched to
the data's bands (:mod:`geossl.models.band_matching`) and a vision transformer's
position embeddings resampled to its grid.
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from geossl.errors import GeosslInputError
from geossl.models.band_matching import RGB_BANDS, band_sources, match_bands

#: Where each kind of checkpoint keeps its backbone (the prefix of its weights).
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.', 'model.backbone.model.')

#: The hyperparameter naming the timm model (geossl's and TorchGeo's; older geossl's).
BACKBONE_NAME_KEYS = ('model', 'backbone')


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
        (:func:`~geossl.models.band_matching.band_sources`): a band the weights
        lack takes the mean of theirs.

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
        weights: the initial weights (see
            :func:`~geossl.models.weight_sources.read_initial_weights`).
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
