"""gpulab notify: outgoing mail and its delivery state."""

__version__ = "0.1.0"
