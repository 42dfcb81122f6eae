"""gpulab pki: the internal CA, enrollment tokens, issued and revoked certificates."""

__version__ = "0.1.0"
