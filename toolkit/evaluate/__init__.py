"""Evaluation metrics and result reporting.

Pure functions over embedding tensors (the glue that extracts embeddings from models lives
elsewhere):

- :mod:`toolkit.evaluate.pooling` -- masked mean / mean+std pooling of frame features.
- :mod:`toolkit.evaluate.linear_probe` -- fixed-protocol multinomial logistic-regression probe.
- :mod:`toolkit.evaluate.retrieval` -- audio<->text retrieval R@K and mAP@10.
- :mod:`toolkit.evaluate.zero_shot` -- zero-shot classification from class-prompt embeddings.
- :mod:`toolkit.evaluate.report` -- CSV / markdown / plot report of all results.
"""
