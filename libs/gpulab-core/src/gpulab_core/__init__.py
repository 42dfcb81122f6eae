"""Shared core of the gpulab services.

Everything here is transport or infrastructure glue that every service needs in the same shape:
settings, the NATS RPC envelope, the event stream and its outbox, DB sessions, telemetry, health.
Domain rules never live here.
"""

__version__ = "0.1.0"
