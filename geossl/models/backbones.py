"""Image backbones from timm, for any band count and chip size."""

import timm
from torch import nn

from geossl.errors import GeosslInputError

#: Name prefixes of timm's vision transformers, which are built for the chip size.
VISION_TRANSFORMERS = ('vit_', 'deit', 'eva', 'beit')


def is_vision_transformer(name: str) -> bool:
    """Whether a timm model name is a vision transformer.

    Args:
        name: the timm model name.

    Returns:
        True for ViT-like models.
    """
    return name.startswith(VISION_TRANSFORMERS)


def create_backbone(name: str, in_channels: int, chip_size: int) -> nn.Module:
    """A new timm model without its classifier, returning pooled features.

    Its initial weights are loaded afterwards
    (:func:`~geossl.models.weights.load_backbone_weights`), band-matched.

    Args:
        name: the timm model name, e.g. ``resnet18`` or ``vit_small_patch16_224``.
        in_channels: number of input bands.
        chip_size: input height and width; vision transformers are built for it.

    Returns:
        The backbone; its ``num_features`` is the feature size.

    Raises:
        GeosslInputError: if timm has no model of that name.
    """
    if not timm.is_model(name):
        raise GeosslInputError(
            'model',
            f'{name!r} is not a timm model (e.g. resnet18, resnet50, '
            'vit_small_patch16_224)',
        )
    options = {'img_size': chip_size} if is_vision_transformer(name) else {}
    return timm.create_model(name, in_chans=in_channels, num_classes=0, **options)
