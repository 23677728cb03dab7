"""Audio encoders: ``forward(features (B,T,F), feature_lens (B,)) -> (hidden (B,T',D), lens (B,))``."""
