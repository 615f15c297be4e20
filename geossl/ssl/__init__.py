"""Pseudo-label policies: FixMatch, FreeMatch, FlexMatch, SoftMatch and multi-label."""
