"""Causal language-model plugins (registry ``LANGUAGE_MODELS``) for language-involved evaluation.

Every module here is imported as a plugin module on the first ``LANGUAGE_MODELS`` lookup:
:mod:`toolkit.evaluate.heads.lm.base` holds the interface (:class:`~toolkit.evaluate.heads.lm.base.CausalLM`) and greedy
decoding, :mod:`toolkit.evaluate.heads.lm.tiny` the recipe-trained ``tiny`` LM, :mod:`toolkit.evaluate.heads.lm.hf` the
Hugging Face ``hf`` LM loaded from a local folder. See docs/evaluation_qa.md.
"""
