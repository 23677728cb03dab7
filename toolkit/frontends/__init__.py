"""Frontends: waveforms (B, S) -> features (B, T, F), run inside the model (CPU or GPU)."""
