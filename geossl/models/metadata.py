"""Encoders of where and when: ``meta = [lon, lat, unix_time]`` to an embedding.

Location is encoded on the sphere, so that the antimeridian and the poles are not
seams: the 3-D unit vector of the point plus multi-scale sinusoids of it, real
spherical harmonics, or SatCLIP's pretrained location encoder (TorchGeo's
:class:`~torchgeo.models.SatCLIP`: spherical harmonics and a SIREN network trained
against Sentinel-2 images of the whole globe). Time is the cyclic day of year (leap
years handled exactly), optionally with the year and the time of day. Where
``meta_mask`` says a value is missing (EuroSAT has no dates; a raster may have no
CRS), a learned "missing" vector takes the place of its features: the encoders
never see NaN or a made-up zero.
"""

import math
from typing import Literal, Self

import torch
from torch import Tensor, nn

from geossl.data.tile_metadata import MetadataParts
from geossl.errors import GeosslInputError

LocationEncoding = Literal['sinusoidal', 'harmonics', 'satclip']

#: The sizes of SatCLIP's released location encoder (``SATCLIP_VIT16_L40``).
SATCLIP_SIZES = {
    'legendre_polys': 40,
    'capacity': 512,
    'embed_dim': 256,
    'num_hidden_layers': 2,
}

_SECONDS_PER_DAY = 86400.0


def unit_vectors(lon: Tensor, lat: Tensor) -> Tensor:
    """Points on the unit sphere.

    Args:
        lon: longitudes in degrees.
        lat: latitudes in degrees.

    Returns:
        ``(..., 3)`` unit vectors (x towards lon 0, z towards the north pole).
    """
    lon, lat = torch.deg2rad(lon), torch.deg2rad(lat)
    return torch.stack(
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=-1
    )


def sinusoidal_location(lon: Tensor, lat: Tensor, scales: int = 4) -> Tensor:
    """The unit vector and sinusoids of it at ``scales`` octaves.

    Args:
        lon: longitudes in degrees.
        lat: latitudes in degrees.
        scales: number of octaves (features: ``3 + 6 * scales``).

    Returns:
        ``(..., 3 + 6 * scales)`` features, continuous across the antimeridian and
        identical for every longitude at a pole.
    """
    xyz = unit_vectors(lon, lat)
    frequencies = math.pi * 2.0 ** torch.arange(scales, device=xyz.device)
    angles = (xyz[..., None, :] * frequencies[:, None]).flatten(-2)
    return torch.cat([xyz, angles.sin(), angles.cos()], dim=-1)


def spherical_harmonics(lon: Tensor, lat: Tensor, degrees: int = 10) -> Tensor:
    """Real, orthonormal spherical harmonics of degrees 0 to ``degrees - 1``.

    Associated Legendre functions come from the standard stable recurrences,
    computed in float64.

    Args:
        lon: longitudes in degrees.
        lat: latitudes in degrees.
        degrees: number of degrees L (features: ``L ** 2``).

    Returns:
        ``(..., L ** 2)`` features ordered by degree, then order -l..l.
    """
    dtype = lon.dtype
    x = torch.deg2rad(lat.double()).sin()  # cos(colatitude)
    phi = torch.deg2rad(lon.double())
    sine = (1 - x**2).clamp(min=0).sqrt()
    legendre: dict[tuple[int, int], Tensor] = {}
    for m in range(degrees):
        # P_m^m = (-1)^m (2m - 1)!! sin^m, then upwards in l.
        # As a float: the double factorial outgrows int64 from m = 20.
        diagonal = (-1) ** m * float(math.prod(range(1, 2 * m, 2))) * sine**m
        legendre[m, m] = diagonal
        if m + 1 < degrees:
            legendre[m + 1, m] = x * (2 * m + 1) * diagonal
        for degree in range(m + 2, degrees):
            legendre[degree, m] = (
                (2 * degree - 1) * x * legendre[degree - 1, m]
                - (degree + m - 1) * legendre[degree - 2, m]
            ) / (degree - m)
    features = []
    for degree in range(degrees):
        for order in range(-degree, degree + 1):
            m = abs(order)
            norm = math.sqrt(
                (2 * degree + 1)
                / (4 * math.pi)
                * math.factorial(degree - m)
                / math.factorial(degree + m)
            )
            value = norm * legendre[degree, m]
            if order > 0:
                value = math.sqrt(2) * value * torch.cos(m * phi)
            elif order < 0:
                value = math.sqrt(2) * value * torch.sin(m * phi)
            features.append(value)
    return torch.stack(features, dim=-1).to(dtype)


def is_leap_year(year: Tensor) -> Tensor:
    """Whether years of the proleptic Gregorian calendar have 366 days.

    Args:
        year: integer years.

    Returns:
        Boolean tensor.
    """
    return ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)


def civil_dates(unix_time: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Year, 0-based day of year and seconds of day of UTC Unix times.

    Uses the days-to-civil-date arithmetic of the proleptic Gregorian calendar,
    vectorised, so leap years come out exactly.

    Args:
        unix_time: seconds since 1970-01-01 UTC.

    Returns:
        (year, day_of_year, seconds_of_day) tensors.
    """
    seconds = unix_time.double()
    days = torch.floor(seconds / _SECONDS_PER_DAY)
    seconds_of_day = seconds - days * _SECONDS_PER_DAY
    shifted = days.long() + 719468  # days since 0000-03-01
    era = torch.div(shifted, 146097, rounding_mode='floor')
    day_of_era = shifted - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_from_march = day_of_era - (
        365 * year_of_era + year_of_era // 4 - year_of_era // 100
    )
    month_index = (5 * day_from_march + 2) // 153  # 0 = March
    year = year_of_era + era * 400 + (month_index >= 10).long()
    leap = is_leap_year(year)
    # Days before March 1 of the same calendar year: 59, or 60 in a leap year.
    before_march = 59 + leap.long()
    day_of_year = torch.where(
        month_index >= 10,
        day_from_march - 306,  # January and February belong to the next year
        day_from_march + before_march,
    )
    return year, day_of_year, seconds_of_day


def time_features(
    unix_time: Tensor, year: bool = False, time_of_day: bool = False
) -> Tensor:
    """Cyclic day of year, and optionally the year and the cyclic time of day.

    Args:
        unix_time: seconds since 1970-01-01 UTC.
        year: add ``(year - 2020) / 10``.
        time_of_day: add the sine and cosine of the time of day.

    Returns:
        ``(..., 2 [+ 1] [+ 2])`` features.
    """
    calendar_year, day_of_year, seconds_of_day = civil_dates(unix_time)
    leap = is_leap_year(calendar_year)
    fraction = (day_of_year + seconds_of_day / _SECONDS_PER_DAY) / (365 + leap.double())
    angle = 2 * math.pi * fraction
    parts = [angle.sin(), angle.cos()]
    if year:
        parts.append((calendar_year.double() - 2020) / 10)
    if time_of_day:
        day_angle = 2 * math.pi * seconds_of_day / _SECONDS_PER_DAY
        parts += [day_angle.sin(), day_angle.cos()]
    return torch.stack(parts, dim=-1).to(unix_time.dtype)


class MetadataEncoder(nn.Module):
    """``[lon, lat, unix_time]`` plus its mask to an embedding, with learned "missing".

    Args:
        parts: which metadata to use: ``location+time``, ``location``, ``time`` or
            ``none`` (an ablation: the embedding is then a learned constant).
        location_encoding: ``sinusoidal`` (unit vector + multi-scale sinusoids),
            ``harmonics`` (real spherical harmonics) or ``satclip`` (SatCLIP's
            network, whose weights :meth:`load_satclip` loads).
        location_scales: octaves of the sinusoidal encoding.
        harmonics_degrees: degrees of the spherical harmonics.
        year: add the year to the time features.
        time_of_day: add the time of day to the time features.
        dim: size of the embedding.
        freeze_location_encoder: keep SatCLIP's network as loaded (in evaluation
            mode, not trained); False fine-tunes it with the teacher.
    """

    def __init__(
        self,
        parts: MetadataParts = 'location+time',
        location_encoding: LocationEncoding = 'sinusoidal',
        location_scales: int = 4,
        harmonics_degrees: int = 10,
        year: bool = False,
        time_of_day: bool = False,
        dim: int = 128,
        freeze_location_encoder: bool = True,
    ) -> None:
        super().__init__()
        if parts not in ('location+time', 'location', 'time', 'none'):
            raise GeosslInputError(
                'metadata', f'is {parts!r}; use location+time, location, time or none'
            )
        if location_encoding not in ('sinusoidal', 'harmonics', 'satclip'):
            raise GeosslInputError(
                'location_encoding',
                f'is {location_encoding!r}; use sinusoidal, harmonics or satclip',
            )
        self.parts = parts
        self.uses_location = 'location' in parts
        self.uses_time = 'time' in parts
        self.location_encoding = location_encoding
        self.location_scales = location_scales
        self.harmonics_degrees = harmonics_degrees
        self.year = year
        self.time_of_day = time_of_day
        self.freeze_location_encoder = freeze_location_encoder
        self.satclip: nn.Module | None = None
        if location_encoding == 'satclip' and self.uses_location:
            # TorchGeo's network, imported where it is asked for.
            from torchgeo.models import SatCLIP

            self.satclip = SatCLIP(**SATCLIP_SIZES)
            self.satclip.requires_grad_(not freeze_location_encoder)
            self.satclip.train(not freeze_location_encoder)
        location_width = {
            'sinusoidal': 3 + 6 * location_scales,
            'harmonics': harmonics_degrees**2,
            'satclip': SATCLIP_SIZES['embed_dim'],
        }[location_encoding]
        time_width = 2 + int(year) + 2 * int(time_of_day)
        # A constant input, so that 'none' still has something to map.
        width = 1
        if self.uses_location:
            self.missing_location = nn.Parameter(torch.zeros(location_width))
            width += location_width
        if self.uses_time:
            self.missing_time = nn.Parameter(torch.zeros(time_width))
            width += time_width
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, dim))

    def load_satclip(self, sizes: dict[str, int], state: dict[str, Tensor]) -> None:
        """Load SatCLIP's pretrained location encoder.

        Args:
            sizes: the encoder's sizes, as its weights' ``meta`` gives them.
            state: its state dict (see
                :func:`geossl.models.torchgeo_weights.read_satclip`).

        Raises:
            GeosslInputError: if the encoder is not SatCLIP's, or the weights are
                for other sizes.
        """
        if self.satclip is None:
            raise GeosslInputError(
                'location_encoding',
                f'is {self.location_encoding!r}: there is no SatCLIP to load',
            )
        if sizes != SATCLIP_SIZES:
            raise GeosslInputError(
                'location_encoding',
                f"satclip's weights have sizes {sizes}, not {SATCLIP_SIZES}",
            )
        self.satclip.load_state_dict(state)

    def train(self, mode: bool = True) -> Self:
        """Set training mode; a frozen SatCLIP stays in evaluation mode (no dropout).

        Args:
            mode: training (True) or evaluation.

        Returns:
            The encoder.
        """
        super().train(mode)
        if self.satclip is not None and self.freeze_location_encoder:
            self.satclip.eval()
        return self

    def forward(self, meta: Tensor, mask: Tensor) -> Tensor:
        """Embed a batch of metadata.

        Args:
            meta: ``(B, 3)`` ``[lon, lat, unix_time]``; values where ``mask`` is
                False are ignored.
            mask: ``(B, 3)`` True where a value is known.

        Returns:
            ``(B, dim)`` embeddings.

        Raises:
            GeosslInputError: if ``meta`` is not ``(B, 3)``.
        """
        if meta.ndim != 2 or meta.shape[1] != 3 or mask.shape != meta.shape:
            raise GeosslInputError(
                'meta',
                f'has shape {tuple(meta.shape)} (mask {tuple(mask.shape)}); expected '
                '(batch, 3) = [lon, lat, unix_time] with a mask of the same shape',
            )
        parts = [meta.new_ones(len(meta), 1)]
        if self.uses_location:
            located = (mask[:, 0] & mask[:, 1])[:, None]
            # Unknown coordinates are replaced before encoding, so nothing odd flows.
            lon = torch.where(located[:, 0], meta[:, 0], 0.0)
            lat = torch.where(located[:, 0], meta[:, 1], 0.0)
            if self.satclip is not None:
                features = self.satclip(torch.stack([lon, lat], dim=1))
                features = features.to(meta.dtype)
            elif self.location_encoding == 'sinusoidal':
                features = sinusoidal_location(lon, lat, self.location_scales)
            else:
                features = spherical_harmonics(lon, lat, self.harmonics_degrees)
            parts.append(torch.where(located, features, self.missing_location))
        if self.uses_time:
            dated = mask[:, 2:3]
            unix_time = torch.where(dated[:, 0], meta[:, 2], 0.0)
            features = time_features(unix_time, self.year, self.time_of_day)
            parts.append(torch.where(dated, features, self.missing_time))
        return self.mlp(torch.cat(parts, dim=1))
