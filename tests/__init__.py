"""Tests of geossl."""
