"""Distances between samples on the Earth, from their WGS 84 longitude and latitude.

A k-d tree of unit vectors finds each sample's nearest others in O(N log N), for
any number of tiles; chords convert to great-circle kilometres on a sphere of the
Earth's mean radius, close enough for buffers and neighbours of a few kilometres.
"""

import math

import numpy as np

#: The Earth's mean radius (IUGG), in km.
EARTH_RADIUS_KM = 6371.0088


def unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points on the unit sphere of longitudes and latitudes in degrees.

    Args:
        lon: ``(N,)`` longitudes; NaN where unknown.
        lat: ``(N,)`` latitudes; NaN where unknown.

    Returns:
        ``(N, 3)`` unit vectors; NaN rows where unknown.
    """
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack(
        [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1
    )


def chord(km: float) -> float:
    """The straight-line distance through the unit sphere of an arc of ``km``."""
    return 2 * math.sin(min(km / EARTH_RADIUS_KM, math.pi) / 2)


def nearest_km(
    lon: np.ndarray, lat: np.ndarray, sources: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """The great-circle distance from each source sample to its nearest target.

    Args:
        lon: every sample's longitude in degrees.
        lat: every sample's latitude in degrees.
        sources: positions of the samples measured from.
        targets: positions of the samples measured to.

    Returns:
        ``(len(sources),)`` distances in km; inf where no target is located, NaN
        for a source without a location.
    """
    # Imported here: only distances need scikit-learn, which is slow to import.
    from sklearn.neighbors import KDTree

    points = unit_vectors(lon, lat)
    located = np.isfinite(points).all(axis=1)
    distances = np.full(len(sources), np.nan)
    known = located[sources]
    targets = targets[located[targets]]
    if not len(targets):
        distances[known] = np.inf
        return distances
    if known.any():
        chords, _ = KDTree(points[targets]).query(points[sources[known]], k=1)
        arcs = 2 * np.arcsin(np.clip(chords[:, 0] / 2, 0, 1))
        distances[known] = arcs * EARTH_RADIUS_KM
    return distances
