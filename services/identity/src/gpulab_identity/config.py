from pydantic import Field, SecretStr

from gpulab_core.contracts.identity import SSH_KEYS_PER_USER_DEFAULT
from gpulab_core.sealing import MIN_KEY_CHARS
from gpulab_core.settings import DatabaseSettings, local_database_url

# Keys per user at most: every change of a user's keys emits their whole list, and every assignment
# carries it to its node; 100 keys of the longest line (SSH_KEY_MAX_BYTES) stay well inside one bus
# message (gpulab_core.events.MAX_MESSAGE_BYTES), which a test checks.
SSH_KEYS_PER_USER_LIMIT = 100


class Settings(DatabaseSettings):
    database_url: str = local_database_url("identity")
    metrics_port: int = 9101
    # When both are set and no admin exists, that admin is created at start.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    # Seals each invite's token in the event notify mails it from (gpulab_core.sealing); notify has the
    # same value. No default: the local run generates one, a deployment sets its own.
    invite_seal_key: SecretStr = Field(min_length=MIN_KEY_CHARS)
    # Keys the audit log's hash chain (audit/repository.py). Never stored in the database, so that
    # no database role, owner or superuser, can re-chain rows it rewrote. No default, as above.
    audit_hmac_key: SecretStr = Field(min_length=MIN_KEY_CHARS)
    # Refused requests (CSRF, 403) the gateway reports, recorded per minute at most: from one client
    # address, and from all together. Beyond either the refusal is counted
    # (gpulab_identity_audit_refusals_dropped_total) but not written, so a flood of refusals cannot
    # grow the log (which nobody may prune) by more than refusals_per_minute rows a minute.
    audit_refusals_per_address_per_minute: int = Field(default=10, ge=1, le=1000)
    audit_refusals_per_minute: int = Field(default=60, ge=1, le=10_000)
    invite_ttl_hours: int = Field(default=72, ge=1, le=30 * 24)
    # A session ends after this long without a request, and after the absolute limit in any case.
    session_idle_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    session_absolute_hours: int = Field(default=24, ge=1, le=30 * 24)
    # Failed logins evaluated per hour; beyond that the login is refused unevaluated (429). The
    # "account" limit counts one account's failures from one client address (never the account's
    # failures from everywhere: that would let anyone lock its owner out, issue 12), capped at 100
    # (issue 3); the per-address one counts every account, higher for shared NATs.
    login_max_failures_per_account: int = Field(default=30, ge=1, le=100)
    login_max_failures_per_ip: int = Field(default=300, ge=1, le=100_000)
    # argon2id parameters: OWASP's minimum is m=19 MiB, t=2, p=1; lower is refused.
    argon2_memory_kib: int = Field(default=19 * 1024, ge=19 * 1024, le=1024 * 1024)
    argon2_time_cost: int = Field(default=2, ge=2, le=20)
    # SSH keys one person may have at once; one more is refused with 409 too_many_ssh_keys.
    ssh_keys_per_user_max: int = Field(default=SSH_KEYS_PER_USER_DEFAULT, ge=1, le=SSH_KEYS_PER_USER_LIMIT)
