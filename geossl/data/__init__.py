"""Data layer: metadata, rasters, indexes, datasets, splits and the DataModule."""
