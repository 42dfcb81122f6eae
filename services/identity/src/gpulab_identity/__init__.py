"""gpulab identity: users, roles, invites, sessions, SSH keys and the audit log."""

__version__ = "0.1.0"
