"""Local emulators of the X, Facebook Graph and Instagram private HTTP APIs.

The connectors reach them through `publisher.connectors.loopback`, so the real platform
libraries run unchanged. `Sandbox` is imported lazily so that `import publisher.sandbox`
stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.sandbox.server import Sandbox, serve_forever

__all__ = ["Sandbox", "serve_forever"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from publisher.sandbox import server

        return getattr(server, name)
    raise AttributeError(name)
