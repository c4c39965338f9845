"""mnist-tui: train and study MNIST convolutional networks from the terminal."""

__version__ = "0.1.0"
