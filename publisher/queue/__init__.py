"""The delivery queue on the store: claim with a lease, publish once, retry, reconcile.

`SqlAlchemyQueue` (store.py) is the queue itself; `Publisher` (worker.py) is the publish use
case for one claimed delivery; `DaemonLock` (lock.py) keeps one daemon per SQLite file;
`QueueSettings` (settings.py) is the `[daemon]` table of config.toml.
"""

from __future__ import annotations

from publisher.queue.lock import DaemonLock
from publisher.queue.settings import QueueSettings
from publisher.queue.store import Claim, SqlAlchemyQueue
from publisher.queue.worker import Outcome, Publisher

__all__ = ["Claim", "DaemonLock", "Outcome", "Publisher", "QueueSettings", "SqlAlchemyQueue"]
