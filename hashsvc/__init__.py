"""hashsvc: perceptual-hash image matching for upload pipelines."""

__version__ = "0.1.0"
