"""gpulab inventory: nodes, their hardware and status, and the desired state each node enforces."""

__version__ = "0.1.0"
