"""Heads trained on a frozen encoder's outputs during evaluation: probe heads
(:mod:`~toolkit.evaluate.heads.probe`), their fitting loop and optimiser helpers
(:mod:`~toolkit.evaluate.heads.fit`), and the causal language models of the QA evaluator
(:mod:`~toolkit.evaluate.heads.lm`). Training code (``toolkit.train``) never imports them."""
