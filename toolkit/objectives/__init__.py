"""Objectives: ``forward(encoder_out, encoder_lens, batch) -> {"loss": scalar, ...}``."""
