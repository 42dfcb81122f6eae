"""The agent's install script and binary downloads, served outside /api/v1 (API.md)."""
