"""Causal language-model plugins (registry ``LANGUAGE_MODELS``) for language-involved evaluation.

Every module here is imported as a plugin module (``toolkit.registry.BUILTIN_PLUGIN_PACKAGES``):
:mod:`toolkit.lm.base` holds the interface (:class:`~toolkit.lm.base.CausalLM`) and greedy
decoding, :mod:`toolkit.lm.tiny` the recipe-trained ``tiny`` LM, :mod:`toolkit.lm.hf` the
Hugging Face ``hf`` LM loaded from a local folder. See docs/evaluation_qa.md.
"""
