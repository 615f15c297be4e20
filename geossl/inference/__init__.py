"""Using trained models: whole-raster maps and export."""
