"""Training: the generic trainer loop, checkpoints, optimisers and LR schedulers."""
