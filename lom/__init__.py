"""LOM: weighted imitation Learning on One Mode (ICLR 2025), reference implementation."""

__version__ = "0.1.0"
