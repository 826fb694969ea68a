"""albertctl: train, fine-tune, evaluate and convert ALBERT language models."""

__version__ = "0.1.0"
