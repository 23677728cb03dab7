"""Causal language-model plugins (registry ``LANGUAGE_MODELS``) for language-involved evaluation.

Every module here is imported as a plugin module on the first ``LANGUAGE_MODELS`` lookup:
:mod:`toolkit.lm.base` holds the interface (:class:`~toolkit.lm.base.CausalLM`) and greedy
decoding, :mod:`toolkit.lm.tiny` the recipe-trained ``tiny`` LM, :mod:`toolkit.lm.hf` the
Hugging Face ``hf`` LM loaded from a local folder. See docs/evaluation_qa.md.
"""
