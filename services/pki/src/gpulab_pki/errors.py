"""pki's domain errors beyond the CA core's (gpulab_pki.ca.errors); each edge maps them by type once."""

from __future__ import annotations

from datetime import datetime

from gpulab_core.errors import GpulabError, InvalidRequest

TOKEN_REFUSED = "enrollment_token_refused"
CERTIFICATE_REFUSED = "client_certificate_refused"
RENEWAL_TOO_EARLY = "renewal_too_early"
KEY_REUSED = "key_reused"


class TokenRefused(GpulabError):
    """Unknown, used, invalidated or expired: one message for all, so a caller learns nothing about which."""

    code = TOKEN_REFUSED

    def __init__(self) -> None:
        super().__init__("the enrollment token is unknown, already used or expired; ask the admin for a new one")


class CertificateRefused(GpulabError):
    """Renew without a certificate we issued and still honour; the node must enroll again."""

    code = CERTIFICATE_REFUSED

    def __init__(self, why: str) -> None:
        super().__init__(f"{why}; enroll again with a new token")


class RenewalTooEarly(GpulabError):
    code = RENEWAL_TOO_EARLY

    def __init__(self, opens_at: datetime) -> None:
        super().__init__(
            f"the certificate can be renewed from {opens_at.isoformat()} on (2/3 of its lifetime)",
            details={"opens_at": opens_at.isoformat()},
        )


class KeyReused(InvalidRequest):
    code = KEY_REUSED

    def __init__(self) -> None:
        super().__init__("the CSR carries the current certificate's key; renewal needs a new key")
