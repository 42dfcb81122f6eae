"""gpulab scheduler: Environments, node membership, assignments and the exact GPUs they hold."""

__version__ = "0.1.0"
