"""cvlab: a command-line experiment runner for deep learning on images."""

__version__ = "0.1.0"
