"""The CA's domain errors. Each carries a stable `code` for the edges and a `reason` word in `details`.

The codes live here until pki has its contracts module in gpulab_core (then they move there, as
identity's did), because the gateway and the gRPC edge map them by code, not by class.
"""

from __future__ import annotations

from typing import Literal

from gpulab_core.errors import GpulabError, InvalidRequest

INVALID_CSR = "invalid_csr"
CA_UNAVAILABLE = "ca_unavailable"

CsrReason = Literal[
    "empty",
    "too_large",
    "not_pem",
    "malformed",
    "unsupported_key",
    "unsupported_curve",
    "unsupported_signature_algorithm",
    "bad_signature",
    "extensions_not_allowed",
    "attributes_not_allowed",
]

CaKeyReason = Literal[
    "wrong_passphrase",
    "not_encrypted",
    "malformed",
    "wrong_key_type",
    "key_mismatch",
    "not_a_ca",
    "ca_expired",
    "weak_passphrase",
    "insecure_file",
    "missing_file",
]


class InvalidCsr(InvalidRequest):
    """A node's certificate signing request that we refuse; the message says exactly what is wrong.

    Nothing from the CSR but its public key ends up in a certificate, so the message may quote what
    the CSR asked for: it goes back to the node that sent it.
    """

    code = INVALID_CSR

    def __init__(self, reason: CsrReason, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason: CsrReason = reason


class CaKeyError(GpulabError):
    """The CA cannot sign: its key or passphrase is missing, wrong or unsafe, or its certificate is unusable.

    Callers see only `ca_unavailable`; the message is for the operator reading the service's log.
    """

    code = CA_UNAVAILABLE

    def __init__(self, reason: CaKeyReason, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason: CaKeyReason = reason


class WeakPassphrase(CaKeyError, ValueError):
    """A passphrase setting we refuse. Also a ValueError, so a pydantic validator can let it through
    and the service stops at start with this message next to the variable's name."""

    def __init__(self, message: str) -> None:
        super().__init__("weak_passphrase", message)
