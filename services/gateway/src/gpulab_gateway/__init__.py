"""gpulab gateway: the REST API under /api/v1, the install script, agent downloads and the web app."""

__version__ = "0.1.0"
