"""toolkit: audio-language pretraining of general-purpose audio encoders."""

__version__ = "0.1.0"
