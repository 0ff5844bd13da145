"""Leases: which replica works on a delivery's pending work, and until when.

A delivery with pending work carries a lease (`work.leaseOwner`, `work.leaseExpiresAt`). The holder
renews it with every checkpoint it writes. A lease that expired means its holder died or stalled, and
any replica's sweeper may take it over; taking it is a conditional write, so one replica wins.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from delivery_service.store import StoredDelivery, Work

Kick = Callable[[str], None]
"""Start this replica's work on a delivery whose lease it holds, or wake the work already running."""


def replica_name() -> str:
    """Unique per process, readable in a log line: host, pid, and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leases:
    def __init__(self, owner: str, seconds: float) -> None:
        self.owner = owner
        self.seconds = seconds

    def expiry(self) -> float:
        return time.time() + self.seconds

    def holds(self, work: Work | None) -> bool:
        """This replica holds the lease of this work (however late it is)."""
        return work is not None and work.lease_owner == self.owner

    @staticmethod
    def is_live(work: Work | None) -> bool:
        return work is not None and work.lease_expires_at > time.time()

    def renewed(self, delivery: StoredDelivery) -> StoredDelivery:
        """The delivery with its work's lease held by this replica for another lease period."""
        if delivery.work is None:
            return delivery
        work = delivery.work.model_copy(
            update={"lease_owner": self.owner, "lease_expires_at": self.expiry()}
        )
        return delivery.model_copy(update={"work": work})

    def give_work(self, delivery: StoredDelivery, work: Work) -> StoredDelivery:
        """Set the delivery's pending work, keeping a live lease where it is, or taking it here.

        A replica holding a live lease is in the middle of a step: it sees the new work when its next
        checkpoint fails on the ETag, and carries on with it, so two replicas never act at once.
        """
        current = delivery.work
        if current is not None and self.is_live(current):
            work = work.model_copy(
                update={
                    "lease_owner": current.lease_owner,
                    "lease_expires_at": current.lease_expires_at,
                }
            )
        else:
            work = work.model_copy(
                update={"lease_owner": self.owner, "lease_expires_at": self.expiry()}
            )
        return delivery.model_copy(update={"work": work})
