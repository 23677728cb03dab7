"""Text side: tokenizers (SentencePiece) and text encoders (towers for contrastive objectives)."""
