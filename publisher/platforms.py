"""Connectors for the configured accounts, with their credentials from the vault.

An account marked `sandbox = true` is served by the local emulators: the first command that
needs one starts them in-process on a free loopback port, with their state under
`<data_dir>/sandbox/`, and provisions the account's sandbox credentials into the vault once.
Production accounts never touch the sandbox.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from publisher.config import AccountConfig, Config
from publisher.connectors import Connector, ConnectorSettings, make_connector
from publisher.errors import AuthFailed, NotFound, SecretUnreadable

if TYPE_CHECKING:
    from publisher.sandbox import Sandbox
    from publisher.secrets import Vault


log = logging.getLogger("publisher.platforms")


class Platforms:
    """One connector per account, made on first use or ahead of it (prepare); thread-safe."""

    def __init__(
        self,
        config: Config,
        vault: Vault,
        settings: ConnectorSettings | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        self.vault = vault
        self.settings = settings or ConnectorSettings(graph_version=config.graph_version)
        self._sandbox = sandbox
        self._owns_sandbox = False
        self._connectors: dict[str, Connector] = {}
        self._lock = threading.RLock()

    def __enter__(self) -> Platforms:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None and self._owns_sandbox:
                self._sandbox.stop()
                self._sandbox = None
            self._connectors.clear()

    @property
    def sandbox(self) -> Sandbox:
        """The emulators, started on first use."""
        with self._lock:
            if self._sandbox is None:
                from publisher.sandbox import Sandbox

                self._sandbox = Sandbox(self.config.data_dir / "sandbox").start()
                self._owns_sandbox = True
            return self._sandbox

    def account(self, name: str) -> AccountConfig:
        account = self.config.account(name)
        if account is None:
            raise NotFound("account", name, hint="see 'publisher account list'")
        return account

    def connector(self, name: str) -> Connector:
        with self._lock:
            if name not in self._connectors:
                self._connectors[name] = self._make(self.account(name))
            return self._connectors[name]

    def prepare(self, names: Iterable[str]) -> list[str]:
        """Make these accounts' connectors now, ahead of their posts, which would otherwise wait
        for them, and for their platform libraries to be imported (0.6 s here, the first time).
        Only accounts whose credentials are stored: nothing is provisioned and no emulator is
        started here. An account whose connector cannot be made (its secret unreadable, its
        session damaged) is logged by error type and left to its first post, which says why;
        the others are made all the same. Returns the accounts prepared."""
        ready = []
        for name in names:
            try:
                account = self.config.account(name)
                if account is None or (account.sandbox and self._sandbox is None) or not self.vault.has(account.secret):
                    continue
                self.connector(name)
            except Exception as exc:  # its first post meets it again, and reports it
                log.warning(
                    "connector not prepared",
                    extra={"event": "connector_unprepared", "account": name, "error": type(exc).__name__},
                )
                continue
            ready.append(name)
        return ready

    def credentials(self, account: AccountConfig) -> dict[str, str]:
        if account.sandbox and not self.vault.has(account.secret):
            creds = self.sandbox.provision_account(account.platform.value, account.handle)
            self.vault.set(account.secret, json.dumps(creds).encode("utf-8"))
        if not self.vault.has(account.secret):
            raise AuthFailed(
                account.platform.value,
                f"account {account.name} has no credentials: store them with 'publisher secrets set {account.secret}'",
            )
        try:
            data = json.loads(self.vault.get(account.secret))
        except (ValueError, UnicodeDecodeError):
            raise SecretUnreadable(account.secret, "not a JSON object of credentials") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretUnreadable(account.secret, "not a JSON object of strings")
        return data

    def _make(self, account: AccountConfig) -> Connector:
        creds = self.credentials(account)
        port = self.sandbox.port if account.sandbox else None

        def save_session(session_json: str) -> None:
            stored = self.credentials(account)
            stored["session"] = session_json
            self.vault.set(account.secret, json.dumps(stored).encode("utf-8"))

        return make_connector(
            account.platform.value, creds, settings=self.settings, sandbox_port=port, save_session=save_session
        )

    def sandbox_account_id(self, name: str) -> str:
        """The emulator's id of a sandbox account (for `live()` and `created_count()`)."""
        return self.credentials(self.account(name))["account_id"]
