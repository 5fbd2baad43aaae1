"""The project's one exception hierarchy.

Every error a user can cause or meet carries structured arguments and builds its own
one-line message: what went wrong, which object, what to do. Messages never contain a
secret (token, passphrase, key material) or a child's name.

    PublisherError
    ├── UsageError                 bad input; the store is left as it was
    │   ├── NotFound               an id that names nothing (subject, post, account, ...)
    │   └── InvalidInput           a value that cannot be accepted (media, date, text, ...)
    ├── ConfigError                config.toml missing or malformed (names the key and line)
    ├── StoreUnavailable           the database cannot be opened
    ├── KeyProblem                 a key file of the wrong kind, a wrong passphrase
    ├── TrustProblem               root not initialised, certificate or revocation not by the pinned root
    ├── SecretError                the vault
    │   ├── MasterKeyMissing
    │   ├── MasterKeyInsecure
    │   └── SecretUnreadable       wrong master key or tampered entry (names the entry, never the value)
    ├── LedgerError                the tamper-evident log
    │   └── LogIntegrityError      first bad sequence number and what is wrong
    ├── DaemonError                the single-daemon lock is held, ...
    └── ConnectorError             raised only by publisher.connectors
        ├── RateLimited            retry_after seconds
        ├── AuthFailed             the account needs a person's attention
        ├── Rejected               permanent: the platform refused (its message)
        ├── Transient              try again later
        └── OutcomeUnknown         the request may have reached the platform: reconcile, never retry blindly
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base of every error the project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PublisherError):
    """The user gave something that cannot be accepted; nothing was changed."""


class NotFound(UsageError):
    def __init__(self, kind: str, ident: object, hint: str = "") -> None:
        self.kind = kind
        self.ident = ident
        what_to_do = hint or f"check the id with 'publisher {kind} list'"
        super().__init__(f"No {kind} {ident!s}: {what_to_do}")


class InvalidInput(UsageError):
    pass


class ConfigError(PublisherError):
    pass


class StoreUnavailable(PublisherError):
    pass


class KeyProblem(PublisherError):
    pass


class TrustProblem(PublisherError):
    pass


class SecretError(PublisherError):
    pass


class MasterKeyMissing(SecretError):
    pass


class MasterKeyInsecure(SecretError):
    pass


class SecretUnreadable(SecretError):
    def __init__(self, name: str, why: str = "wrong master key or the entry was altered") -> None:
        self.name = name
        super().__init__(f"Secret {name!r} cannot be read ({why}): check PUBLISHER_MASTER_KEY / the key file")


class LedgerError(PublisherError):
    pass


class LogIntegrityError(LedgerError):
    def __init__(self, seq: int | None, what: str) -> None:
        self.seq = seq
        self.what = what
        where = f"at sequence {seq}" if seq is not None else "in the log"
        super().__init__(f"Log verification failed {where}: {what}")


class DaemonError(PublisherError):
    pass


class ConnectorError(PublisherError):
    """Raised only by publisher.connectors; no SDK exception escapes that package."""

    def __init__(self, platform: str, message: str) -> None:
        self.platform = platform
        super().__init__(f"{platform}: {message}")


class RateLimited(ConnectorError):
    def __init__(self, platform: str, retry_after: float, message: str = "rate limited") -> None:
        self.retry_after = retry_after
        super().__init__(platform, f"{message} (retry after {retry_after:.0f} s)")


class AuthFailed(ConnectorError):
    """The account needs a person: token revoked, challenge, 2FA, billing."""


class Rejected(ConnectorError):
    """Permanent refusal; retrying the same request will not help."""


class Transient(ConnectorError):
    """A temporary failure; the request certainly did not take effect."""


class OutcomeUnknown(ConnectorError):
    """The request may have reached the platform; reconcile before any retry."""
