"""Weak and strong views of normalised multispectral batches, run on the device.

FixMatch-style training needs two views of every unlabelled image: a *weak* view
(flips, 90-degree rotations, a small shift) whose prediction becomes the pseudo-label,
and a *strong* view (weak + RandAugment-style operations + Cutout) trained to agree
with it. Both work on whole ``B x C x H x W`` batches of any band count, after
per-band normalisation.

Kornia's ``RandAugment`` picks its operations once per batch and includes hue and
saturation, which need three channels and mean nothing for 13 Sentinel-2 bands.
:class:`MultispectralRandAugment` picks operations per sample from a set that is
meaningful on normalised reflectance (geometry, brightness, contrast, sharpness,
blur, noise), and applies each operation once to the group of samples that drew it,
with a magnitude drawn per sample. The geometric operations (rotation, shears,
translations) are each an affine matrix, so all the samples that drew one of them
are warped together, by one PyTorch ``grid_sample`` (the warps of Kornia's
``RandomAffine``, built at once): five Kornia warps a round cost 70 % of the strong
view. Equalize, solarize and posterize are left out: they assume
8-bit-like intensities in [0, 1] and would remap each band non-linearly, breaking
the physical relation between bands.

The weak view's flips, 90-degree turns and shift are exact pixel moves, done here by
indexing rather than by Kornia's resampling warps, which cost most of a step's
views (``benchmarks/views.py``).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.filters import box_blur
from torch import Tensor, nn


class RandomDihedral(nn.Module):
    """A flip and 90-degree turn drawn per sample: the 8 symmetries of the square.

    Each sample draws three bits: flip left-right, flip up-down, swap rows and
    columns (square images only; others draw from the 4 flips). Each of the 8
    moves is applied once, to the samples that drew it.
    """

    def forward(self, images: Tensor) -> Tensor:
        """Move the pixels of a batch.

        Args:
            images: ``B x C x H x W``.

        Returns:
            The batch, each sample flipped and turned.
        """
        height, width = images.shape[-2:]
        moves = 8 if height == width else 4
        choice = torch.randint(moves, (images.shape[0],), device=images.device)
        result = torch.empty_like(images)
        for move in range(moves):
            group = (choice == move).nonzero().squeeze(1)
            if group.numel():
                result[group] = dihedral_move(images[group], move)
        return result


def dihedral_move(images: Tensor, move: int) -> Tensor:
    """One of the 8 symmetries of the square, as an exact pixel move.

    Args:
        images: ``... x H x W``.
        move: three bits, applied in this order: 1 flips left-right, 2 flips
            up-down, 4 swaps rows and columns (square images only).

    Returns:
        The moved images.
    """
    if move & 1:
        images = images.flip(-1)
    if move & 2:
        images = images.flip(-2)
    if move & 4:
        images = images.transpose(-1, -2)
    return images


class RandomShift(nn.Module):
    """Shift each sample by up to ``padding`` pixels, filling by reflection.

    The random crop of a reflect-padded image, as FixMatch's weak view, with one
    offset per sample: the batch is padded once and each sample's crop is a view
    of it, copied out together.
    """

    def __init__(self, padding: int) -> None:
        """Initialise the shift.

        Args:
            padding: the largest shift in pixels, in each direction.
        """
        super().__init__()
        self.padding = padding

    def forward(self, images: Tensor) -> Tensor:
        """Shift a batch.

        Args:
            images: ``B x C x H x W``.

        Returns:
            The shifted batch, same shape.
        """
        pad = self.padding
        height, width = images.shape[-2:]
        padded = F.pad(images, (pad, pad, pad, pad), mode='reflect')
        offsets = torch.randint(2 * pad + 1, (len(images), 2)).tolist()
        return torch.stack(
            [
                sample[:, y : y + height, x : x + width]
                for sample, (y, x) in zip(padded, offsets, strict=True)
            ]
        )


class RandomAffine(nn.Module):
    """A rotation, shear or translation drawn per sample, filling by reflection.

    One of RandAugment's geometric operations: each sample draws its magnitudes
    uniformly within the limits. :class:`MultispectralRandAugment` warps the
    samples of all such operations at once (:func:`random_affine_warp`).

    Args:
        degrees: the largest rotation, in degrees.
        shear: the largest shears along x and y, in degrees.
        translate: the largest shifts along x and y, as fractions of the width and
            height.
    """

    def __init__(
        self,
        degrees: float = 0.0,
        shear: tuple[float, float] = (0.0, 0.0),
        translate: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__()
        # Rotation and shears in radians, shifts in fractions (see affine_theta).
        self.limits = [math.radians(degrees), *map(math.radians, shear), *translate]

    def forward(self, images: Tensor) -> Tensor:
        """Warp a batch.

        Args:
            images: ``B x C x H x W``.

        Returns:
            The warped batch.
        """
        limits = images.new_tensor(self.limits).expand(len(images), -1)
        return random_affine_warp(images, limits)


def affine_theta(moves: Tensor, height: int, width: int) -> Tensor:
    """The sampling matrices of affine moves about the images' centres.

    Each move is one rotation, shear or shift, as Kornia's ``RandomAffine`` draws
    and warps it (``get_affine_matrix2d``, then ``warp_affine``, which inverts the
    matrix). Kornia builds each matrix from a dozen small operations, which cost a
    third of a step's views on 2 cores; these are built at once, for PyTorch's own
    sampling (:func:`torch.nn.functional.affine_grid`).

    Args:
        moves: ``N x 5``: rotation angle (anticlockwise), shear angles along x and
            y (radians), and shifts along x and y (fractions of the width and
            height); one of them nonzero in each row.
        height: the images' height in pixels.
        width: their width.

    Returns:
        ``N x 2 x 3`` matrices from output to input coordinates, normalised to
        [-1, 1].
    """
    angle, shear_x, shear_y, shift_x, shift_y = moves.unbind(dim=1)
    cos, sin = angle.cos(), angle.sin()
    tan_x, tan_y = shear_x.tan(), shear_y.tan()
    # Where each output pixel comes from: the inverse rotation, or the shear, in
    # pixels about the centre; then in coordinates scaled by the sides.
    linear = torch.stack(
        [cos + sin * tan_y, cos * tan_x + sin, cos * tan_y - sin, cos - sin * tan_x],
        dim=1,
    ).view(-1, 2, 2)
    linear[:, 0, 1] *= height / width
    linear[:, 1, 0] *= width / height
    shift = -2 * torch.stack([shift_x, shift_y], dim=1)
    return torch.cat([linear, shift[..., None]], dim=2)


def random_affine_warp(images: Tensor, limits: Tensor) -> Tensor:
    """Warp each image by an affine move drawn uniformly within its limits.

    Bilinear, filling by reflection, as Kornia's ``RandomAffine`` does.

    Args:
        images: ``N x C x H x W``.
        limits: ``N x 5`` largest magnitudes of each image's move (see
            :func:`affine_theta`): the move draws each from ``-limit`` to
            ``limit``.

    Returns:
        The warped images.
    """
    moves = (torch.rand_like(limits) * 2 - 1) * limits
    theta = affine_theta(moves, *images.shape[-2:])
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode='reflection', align_corners=False)


class RandomSharpness(nn.Module):
    """Sharpen each sample by its own factor, without clamping values to [0, 1].

    Kornia's ``RandomSharpness`` clamps to [0, 1], which would destroy normalised
    reflectance; this applies ``x + f * (x - blur(x))`` with ``f`` drawn per sample.
    """

    def __init__(self, strength: float = 0.9) -> None:
        """Initialise the operation.

        Args:
            strength: the largest sharpening factor.
        """
        super().__init__()
        self.strength = strength

    def forward(self, images: Tensor) -> Tensor:
        """Sharpen a batch.

        Args:
            images: ``B x C x H x W``.

        Returns:
            The sharpened batch.
        """
        factor = torch.rand(images.shape[0], 1, 1, 1, device=images.device)
        detail = images - box_blur(images, (3, 3), border_type='reflect')
        return images + self.strength * factor * detail


class SpectralJitter(nn.Module):
    """Colour jitter and grayscale for any number of bands, per sample.

    SimCLR owes much to colour distortion: without it, two crops of a tile are
    matched by their colour histograms alone. RGB hue and saturation mean nothing
    for 13 bands; here, with probability ``p``, every band of a sample gets its own
    gain in ``[1 - strength, 1 + strength]`` and offset in ``[-strength, strength]``
    (normalised units), which changes the spectrum as hue and saturation change
    colour; with probability ``grayscale``, all bands then take their mean.

    Args:
        strength: the largest change of gain and offset.
        p: the chance that a sample's bands are jittered.
        grayscale: the chance that a sample's bands are averaged.
    """

    def __init__(
        self, strength: float = 0.4, p: float = 0.8, grayscale: float = 0.2
    ) -> None:
        super().__init__()
        self.strength = strength
        self.p = p
        self.grayscale = grayscale

    def forward(self, images: Tensor) -> Tensor:
        """Jitter a batch.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            The jittered batch.
        """
        batch, bands = images.shape[:2]
        options = {'device': images.device, 'dtype': images.dtype}

        def uniform(low: float, high: float) -> Tensor:
            return torch.empty(batch, bands, 1, 1, **options).uniform_(low, high)

        jittered = torch.rand(batch, 1, 1, 1, **options) < self.p
        gain = torch.where(jittered, uniform(1 - self.strength, 1 + self.strength), 1.0)
        offset = torch.where(jittered, uniform(-self.strength, self.strength), 0.0)
        images = images * gain + offset
        gray = torch.rand(batch, 1, 1, 1, **options) < self.grayscale
        return torch.where(gray, images.mean(dim=1, keepdim=True), images)


def multispectral_operations() -> dict[str, nn.Module]:
    """The strong-view operations, each drawing its magnitude per sample.

    Magnitudes follow FixMatch's RandAugment ranges, in units of the normalised
    bands (standard deviations) for the intensity operations.

    Returns:
        Operation name -> module applied with probability one.
    """
    return {
        'identity': nn.Identity(),
        'rotate': RandomAffine(degrees=30.0),
        'shear_x': RandomAffine(shear=(17.0, 0.0)),
        'shear_y': RandomAffine(shear=(0.0, 17.0)),
        'translate_x': RandomAffine(translate=(0.3, 0.0)),
        'translate_y': RandomAffine(translate=(0.0, 0.3)),
        'brightness': K.RandomBrightness((0.5, 1.5), clip_output=False, p=1.0),
        'contrast': K.RandomContrast((0.5, 1.5), clip_output=False, p=1.0),
        'sharpness': RandomSharpness(0.9),
        'blur': K.RandomGaussianBlur((5, 5), (0.1, 2.0), p=1.0),
        'noise': K.RandomGaussianNoise(std=0.1, p=1.0),
    }


class MultispectralRandAugment(nn.Module):
    """RandAugment with the operations chosen per sample, still run batched.

    Each of ``num_ops`` rounds draws one operation per sample, then applies every
    drawn operation once, to the samples that drew it; the samples that drew any
    :class:`RandomAffine` operation are warped together, each by its own matrix.
    """

    def __init__(
        self, num_ops: int = 2, operations: Mapping[str, nn.Module] | None = None
    ) -> None:
        """Initialise the augmentation.

        Args:
            num_ops: operations applied to each sample in turn.
            operations: name -> operation; None for :func:`multispectral_operations`.
        """
        super().__init__()
        self.num_ops = num_ops
        self.operations = nn.ModuleDict(operations or multispectral_operations())

    def forward(self, images: Tensor) -> Tensor:
        """Augment a batch.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            The augmented batch, same shape and dtype.
        """
        operations = list(self.operations.values())
        geometric = [isinstance(op, RandomAffine) for op in operations]
        is_warp = torch.tensor(geometric, device=images.device)
        limits = images.new_tensor(
            [
                op.limits if warps else [0.0] * 5
                for op, warps in zip(operations, geometric, strict=True)
            ]
        )
        for _ in range(self.num_ops):
            choice = torch.randint(
                len(operations), (images.shape[0],), device=images.device
            )
            result = torch.empty_like(images)
            warped = is_warp[choice].nonzero().squeeze(1)
            if warped.numel():
                result[warped] = random_affine_warp(
                    images[warped], limits[choice[warped]]
                )
            for number, operation in enumerate(operations):
                group = (choice == number).nonzero().squeeze(1)
                if not geometric[number] and group.numel():
                    result[group] = operation(images[group]).to(images.dtype)
            images = result
        return images


@dataclass(frozen=True)
class ViewOptions:
    """The views' settings: the task's ``views``.

    Attributes:
        num_ops: RandAugment operations per sample in the strong view.
        crop_padding: the weak view's shift as a fraction of the chip size.
    """

    num_ops: int = 2
    crop_padding: float = 0.125


class Views(nn.Module):
    """Normalisation and the weak and strong views of a batch.

    Args:
        mean: per-band mean of the raw values.
        std: per-band standard deviation of the raw values.
        crop_padding: the weak view's shift, as a fraction of the chip size
            (reflect-padded random crop).
        num_ops: RandAugment operations per sample in the strong view.
        cutout: largest area fraction erased by the strong view's Cutout.
    """

    def __init__(
        self,
        mean: Tensor,
        std: Tensor,
        crop_padding: float = 0.125,
        num_ops: int = 2,
        cutout: float = 0.25,
    ) -> None:
        super().__init__()
        # Buffers, so the statistics travel with the model into checkpoints.
        self.register_buffer('mean', mean.reshape(1, -1, 1, 1).float())
        self.register_buffer('std', std.reshape(1, -1, 1, 1).float())
        self.crop_padding = crop_padding
        self.flips = RandomDihedral()
        self.rand_augment = MultispectralRandAugment(num_ops)
        # Erased pixels get the band mean (0 after normalisation), as Cutout does.
        self.cutout = K.RandomErasing(scale=(0.02, cutout), value=0.0, p=1.0)

    @property
    def bands(self) -> int:
        """Number of bands the views expect."""
        return self.mean.shape[1]

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Replace the per-band statistics.

        Args:
            mean: per-band mean of the raw values.
            std: per-band standard deviation of the raw values.
        """
        self.mean.copy_(torch.as_tensor(mean).reshape(self.mean.shape))
        self.std.copy_(torch.as_tensor(std).reshape(self.std.shape))

    def normalise(self, images: Tensor) -> Tensor:
        """Scale raw values by the per-band statistics.

        Args:
            images: ``B x C x H x W`` raw values.

        Returns:
            The normalised batch.
        """
        return (images - self.mean) / self.std

    def weak(self, images: Tensor) -> Tensor:
        """The weak view: flips, 90-degree rotations and a reflect-padded shift.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            The weak view, same shape.
        """
        images = self.flips(images)
        padding = round(self.crop_padding * min(images.shape[-2:]))
        return RandomShift(padding)(images) if padding else images

    def strong(self, images: Tensor) -> Tensor:
        """The strong view: weak view, per-sample RandAugment, then Cutout.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            The strong view, same shape.
        """
        return self.cutout(self.rand_augment(self.weak(images)))


def contrastive_view(
    chip_size: int, num_ops: int = 2, min_scale: float = 0.2
) -> nn.Module:
    """The view self-supervised pretraining draws twice from each normalised image.

    A random resized crop (the augmentation contrastive learning owes most to), a
    flip and turn, the :class:`SpectralJitter` in place of SimCLR's RGB colour
    jitter and grayscale, then the per-sample multispectral RandAugment.

    Args:
        chip_size: output height and width.
        num_ops: RandAugment operations per sample.
        min_scale: the smallest crop, as a fraction of the image area.

    Returns:
        A module from ``B x C x H x W`` to ``B x C x chip_size x chip_size``.
    """
    return nn.Sequential(
        K.RandomResizedCrop((chip_size, chip_size), scale=(min_scale, 1.0)),
        RandomDihedral(),
        SpectralJitter(),
        MultispectralRandAugment(num_ops),
    )
