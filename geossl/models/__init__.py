"""Backbones for any band count."""
