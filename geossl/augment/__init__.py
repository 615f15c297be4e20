"""Weak and strong views of multispectral batches (Kornia, on the device)."""
