"""A person settles a delivery the daemon could not: `publisher delivery resolve`.

A delivery is "unconfirmed" when its platform call may have gone through and the platform
could not say whether it did. The daemon never re-publishes it on its own. Someone looks at
the account and either gives the post's id (checked with a look-up, then recorded live and
logged like any publish) or says it is not there (queued again: the gate runs again first).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from publisher.connectors import PublishedRef
from publisher.errors import InvalidInput, NotFound, UsageError
from publisher.queue import store as q
from publisher.queue.settings import QueueSettings
from publisher.queue.worker import Publisher
from publisher.store import db
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.platforms import Platforms
    from publisher.service import Service


def resolve(service: Service, platforms: Platforms, delivery_id: str, platform_id: str | None, url: str = "") -> str:
    """Settle an unconfirmed delivery; returns its new status."""
    with db.transaction(service.engine) as s:
        row = s.get(m.DeliveryRow, delivery_id)
        if row is None:
            raise NotFound("delivery", delivery_id, hint="see 'publisher status'")
        if row.status != q.UNCONFIRMED:
            raise UsageError(f"Delivery {delivery_id} is {row.status}, not unconfirmed: nothing to resolve")
        account, post_id = row.account, row.post_id
        if platform_id is None:
            row.status = q.CANCELLED if row.cancel_requested else q.QUEUED
            row.next_try_at, row.findings, row.last_error = service.now(), [], f"not live, said {service.actor}"
            return row.status
    connector = platforms.connector(account)
    ref = PublishedRef(connector.platform, platform_id.strip(), url.strip())
    if not ref.platform_id or connector.lookup(ref) != "live":
        raise InvalidInput(f"{platform_id!r} is not a live post on {account}: check the id on the platform")
    queue = q.SqlAlchemyQueue(
        service.engine, f"resolve:{service.actor}", timedelta(seconds=QueueSettings().lease_seconds)
    )
    outcome = Publisher(service, platforms, queue, QueueSettings())._record_live(
        q.Claim(delivery_id, post_id, account, q.UNCONFIRMED), ref, reconciled=True
    )
    return outcome.state
