"""Fusion model: CNN image branch, radar sequence encoder, attention fusion (pure torch)."""
