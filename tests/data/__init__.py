"""Tests of geossl.data."""
