"""Image classifiers: the image-only student and the metadata-fed teacher.

Both return :class:`NetworkOutputs`: logits, a *context* vector, which is what
distillation compares, and, for algorithms that learn embeddings (CoMatch), the
L2-normalised output of a projection head on the pooled features. Context is:

* vision transformers with ``fusion='token'``: the teacher gets one extra token made
  from the metadata embedding (with its own learned position embedding) that passes
  through every block; the student gets one extra learned token in its place, with no
  input. Context is that token's output (Bernhard et al., ECAI 2024);
* otherwise (CNNs, or ViTs with ``film``/``concat``): the teacher conditions the
  pooled features on the metadata, by FiLM (per-channel scale and shift, starting as
  the identity) or by concatenation and an MLP. Context is the (conditioned) pooled
  feature vector.
"""

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import GeosslInputError
from geossl.models.backbones import create_backbone, is_vision_transformer
from geossl.models.metadata import MetadataEncoder

Fusion = Literal['token', 'film', 'concat']


class NetworkOutputs(NamedTuple):
    """What a network returns.

    Attributes:
        logits: ``(B, K)`` class logits.
        context: ``(B, D)`` what distillation compares.
        embeddings: ``(B, P)`` L2-normalised projection-head outputs, or None for a
            network without a head.
    """

    logits: Tensor
    context: Tensor
    embeddings: Tensor | None


class ProjectionHead(nn.Module):
    """CoMatch's projection: a two-layer MLP onto the unit sphere.

    Args:
        width: size of the pooled features.
        dim: size of the embeddings.
    """

    def __init__(self, width: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, dim)
        )

    def forward(self, features: Tensor) -> Tensor:
        """L2-normalised embeddings of pooled features.

        Args:
            features: ``(B, width)``.

        Returns:
            ``(B, dim)`` unit vectors.
        """
        return F.normalize(self.mlp(features), dim=1)


def _projection_head(width: int, dim: int | None) -> ProjectionHead | None:
    return None if dim is None else ProjectionHead(width, dim)


def _outputs(
    head: nn.Module,
    projection: ProjectionHead | None,
    pooled: Tensor,
    context: Tensor,
) -> NetworkOutputs:
    """A network's outputs from its class head, projection head and features."""
    embeddings = None if projection is None else projection(pooled)
    return NetworkOutputs(head(pooled), context, embeddings)


def default_fusion(backbone: str) -> Fusion:
    """The fusion a backbone gets unless told otherwise.

    Args:
        backbone: timm model name.

    Returns:
        ``token`` for vision transformers, ``film`` for the rest.
    """
    return 'token' if is_vision_transformer(backbone) else 'film'


def _check_fusion(fusion: str, backbone: str) -> None:
    if fusion not in ('token', 'film', 'concat'):
        raise GeosslInputError('fusion', f'is {fusion!r}; use token, film or concat')
    if fusion == 'token' and not is_vision_transformer(backbone):
        raise GeosslInputError(
            'fusion',
            f'token fusion needs a vision transformer, not {backbone}; use film or '
            'concat',
        )


def forward_with_token(
    vit: nn.Module, images: Tensor, token: Tensor
) -> tuple[Tensor, Tensor]:
    """Run a timm vision transformer with one extra token through all its blocks.

    Args:
        vit: a timm ``VisionTransformer``.
        images: ``B x C x H x W`` normalised images.
        token: ``(B or 1, 1, D)`` the extra token, position embedding included.

    Returns:
        The pooled features of the image tokens, and the extra token's output.
    """
    tokens = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
    extra = token.expand(len(images), -1, -1)
    tokens = vit.norm(vit.blocks(torch.cat([tokens, extra], dim=1)))
    return vit.forward_head(tokens[:, :-1], pre_logits=True), tokens[:, -1]


class Classifier(nn.Module):
    """The image-only network (the student, or the plain model without a teacher).

    Args:
        backbone: timm model name.
        in_channels: number of input bands.
        num_classes: number of classes.
        chip_size: input height and width.
        context_token: give a vision transformer the extra learned token whose
            output is distilled from the teacher's metadata token.
        projection_dim: size of the projection head's embeddings; None for no
            head.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int,
        num_classes: int,
        chip_size: int,
        context_token: bool = False,
        projection_dim: int | None = None,
    ) -> None:
        super().__init__()
        if context_token:
            _check_fusion('token', backbone)
        self.backbone = create_backbone(backbone, in_channels, chip_size)
        self.context_token = None
        if context_token:
            # A learned token with no input, in the place of the teacher's metadata.
            self.context_token = nn.Parameter(
                torch.zeros(1, 1, self.backbone.embed_dim)
            )
            nn.init.trunc_normal_(self.context_token, std=0.02)
        self.head = nn.Linear(self.backbone.num_features, num_classes)
        self.projection = _projection_head(self.backbone.num_features, projection_dim)

    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled features and context of normalised images.

        Args:
            images: ``B x C x H x W``.

        Returns:
            ``(B, F)`` pooled features and ``(B, D)`` context.
        """
        if self.context_token is not None:
            return forward_with_token(self.backbone, images, self.context_token)
        pooled = self.backbone(images)
        return pooled, pooled

    def forward(self, images: Tensor) -> NetworkOutputs:
        """Logits, context and (with a projection head) embeddings.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            The outputs.
        """
        return _outputs(self.head, self.projection, *self.features(images))


class MetadataClassifier(nn.Module):
    """The teacher: image + metadata embedding, fused into the backbone or its features.

    Args:
        backbone: timm model name.
        in_channels: number of input bands.
        num_classes: number of classes.
        chip_size: input height and width.
        encoder: the metadata encoder.
        fusion: ``token`` (vision transformers), ``film`` or ``concat``.
        projection_dim: size of the projection head's embeddings (of the
            metadata-conditioned features); None for no head.
        shared: another network's backbone (the student's) whose pooled features
            the teacher takes instead of having a backbone of its own
            (``backbone`` is then None); ``film`` or ``concat`` fusion.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int,
        num_classes: int,
        chip_size: int,
        encoder: MetadataEncoder,
        fusion: Fusion,
        projection_dim: int | None = None,
        shared: nn.Module | None = None,
    ) -> None:
        super().__init__()
        _check_fusion(fusion, backbone)
        if shared is not None and fusion == 'token':
            raise GeosslInputError(
                'teacher.image_backbone',
                'is shared, which gives pooled features that token fusion '
                'cannot condition; use film or concat fusion',
            )
        self.backbone = (
            create_backbone(backbone, in_channels, chip_size)
            if shared is None
            else None
        )
        self.encoder = encoder
        self.fusion = fusion
        width = (shared or self.backbone).num_features
        if fusion == 'token':
            network = self.backbone
            self.to_token = nn.Linear(encoder.dim, network.embed_dim)
            self.token_position = nn.Parameter(torch.zeros(1, 1, network.embed_dim))
            nn.init.trunc_normal_(self.token_position, std=0.02)
        elif fusion == 'film':
            self.film = nn.Linear(encoder.dim, 2 * width)
            # Zero scale and shift: the teacher starts as the plain image model.
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        else:
            self.mix = nn.Sequential(
                nn.Linear(width + encoder.dim, width),
                nn.GELU(),
                nn.Linear(width, width),
            )
        self.head = nn.Linear(width, num_classes)
        self.projection = _projection_head(width, projection_dim)

    def features(
        self, images: Tensor, meta: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Metadata-conditioned pooled features and context.

        Args:
            images: ``B x C x H x W`` normalised images; for a teacher without a
                backbone, the shared backbone's ``(B, F)`` pooled features.
            meta: ``(B, 3)`` ``[lon, lat, unix_time]``.
            mask: ``(B, 3)`` True where known.

        Returns:
            ``(B, F)`` pooled features and ``(B, D)`` context.
        """
        embedding = self.encoder(meta, mask)
        if self.fusion == 'token':
            token = self.to_token(embedding)[:, None] + self.token_position
            return forward_with_token(self.backbone, images, token)
        pooled = images if self.backbone is None else self.backbone(images)
        if self.fusion == 'film':
            scale, shift = self.film(embedding).chunk(2, dim=1)
            fused = pooled * (1 + scale) + shift
        else:
            fused = self.mix(torch.cat([pooled, embedding], dim=1))
        return fused, fused

    def forward(self, images: Tensor, meta: Tensor, mask: Tensor) -> NetworkOutputs:
        """Logits, context and (with a projection head) embeddings.

        Args:
            images: ``B x C x H x W`` normalised images (or, without a backbone,
                the shared backbone's pooled features).
            meta: ``(B, 3)`` ``[lon, lat, unix_time]``.
            mask: ``(B, 3)`` True where known.

        Returns:
            The outputs.
        """
        features = self.features(images, meta, mask)
        return _outputs(self.head, self.projection, *features)
