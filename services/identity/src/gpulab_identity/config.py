from pydantic import Field, SecretStr

from gpulab_core.contracts.identity import SSH_KEYS_PER_USER_DEFAULT
from gpulab_core.settings import CoreSettings

# Keys per user at most: every change of a user's keys emits their whole list, and every assignment
# carries it to its node; 100 keys of the longest line (SSH_KEY_MAX_BYTES) stay well inside one bus
# message (gpulab_core.events.MAX_MESSAGE_BYTES), which a test checks.
SSH_KEYS_PER_USER_LIMIT = 100


class Settings(CoreSettings):
    metrics_port: int = 9101
    # When both are set and no admin exists, that admin is created at start.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
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
