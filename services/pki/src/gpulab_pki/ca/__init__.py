"""The internal CA's crypto: the root and its key at rest, node CSR checks, and issuing certificates.

Pure functions over `cryptography` objects: no database, no transport. The pki service stores what
these return and maps their errors at its edges.
"""

from gpulab_pki.ca.authority import (
    Authority,
    certificate_pem,
    create_root,
    encrypt_key,
    fingerprint_sha256,
    fingerprint_sha256_colons,
    load_authority,
    load_certificate,
    load_key,
)
from gpulab_pki.ca.csr import MAX_CSR_BYTES, NodeCsr, validate_node_csr
from gpulab_pki.ca.errors import CA_UNAVAILABLE, INVALID_CSR, CaKeyError, InvalidCsr, WeakPassphrase
from gpulab_pki.ca.issue import (
    DEFAULT_CLIENT_LIFETIME,
    DEFAULT_SERVER_LIFETIME,
    issue_client_cert,
    issue_server_cert,
    issue_server_cert_for_key,
    renewal_window_open,
    serial_hex,
)
from gpulab_pki.ca.passphrase import check_passphrase, ensure_passphrase_file, passphrase_from_file

__all__ = [
    "CA_UNAVAILABLE",
    "DEFAULT_CLIENT_LIFETIME",
    "DEFAULT_SERVER_LIFETIME",
    "INVALID_CSR",
    "MAX_CSR_BYTES",
    "Authority",
    "CaKeyError",
    "InvalidCsr",
    "NodeCsr",
    "WeakPassphrase",
    "certificate_pem",
    "check_passphrase",
    "create_root",
    "encrypt_key",
    "ensure_passphrase_file",
    "fingerprint_sha256",
    "fingerprint_sha256_colons",
    "issue_client_cert",
    "issue_server_cert",
    "issue_server_cert_for_key",
    "load_authority",
    "load_certificate",
    "load_key",
    "passphrase_from_file",
    "renewal_window_open",
    "serial_hex",
    "validate_node_csr",
]
