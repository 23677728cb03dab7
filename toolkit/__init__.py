"""toolkit: audio-language pretraining of general-purpose audio encoders."""

__version__ = "0.1.0"


def load(path, **kwargs):  # noqa: ANN001, ANN201 - thin lazy alias, documented in toolkit.api
    """``toolkit.load(path)`` → :class:`toolkit.api.Model` (see :func:`toolkit.api.load`)."""
    from toolkit.api import load as _load

    return _load(path, **kwargs)


def from_pretrained(path, **kwargs):  # noqa: ANN001, ANN201 - alias of load
    """Same as :func:`load` (the name Hugging Face / open_clip users look for)."""
    return load(path, **kwargs)
