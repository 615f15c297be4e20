"""geossl."""
