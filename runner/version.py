"""The version of remedysweep (the bottom layer: imported by every other)."""

__version__ = "0.3.0"
