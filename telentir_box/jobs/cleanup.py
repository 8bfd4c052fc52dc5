"""cleanup-recordings: deletes call recordings older than the retention period from
their users' stores, in bounded batches that each commit with their object_deleted
events and the run's progress, yielding to the event loop between batches. The call
and its recording row stay (stamped expired); the client learns of the expiry from
the deletion event and a 404 on the object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from telentir_box.db import jobs as jobs_repo
from telentir_box.db import keys as keys_repo
from telentir_box.db.database import Database, Transaction
from telentir_box.db.timestamps import iso
from telentir_box.jobs.periods import Period, Slot, day_period
from telentir_box.jobs.runs import RunContext
from telentir_box.store.objects import delete_tree

# Recordings per transaction: each costs a few statements run on the event loop, so a
# batch holds it for a few milliseconds at most.
BATCH = 100


@dataclass
class CleanupRecordings:
    db: Database
    slot: Slot
    retention_days: int
    batch: int = BATCH
    name: str = "cleanup-recordings"

    def period(self, slot: datetime) -> Period:
        return day_period(slot)

    async def run(self, context: RunContext) -> None:
        if self.retention_days == 0:
            return  # recordings are kept for ever
        # The cutoff is fixed by the first run of the period, so a resumed run deletes
        # what that one set out to, no more.
        cutoff = context.checkpoint.setdefault(
            "cutoff", iso(context.period.slot - timedelta(days=self.retention_days))
        )
        for key in ("deleted_objects", "expired_recordings", "kept_store_objects"):
            context.counts.setdefault(key, 0)
        while True:
            base = dict(context.counts)
            done, context.counts = await self.db.write(
                lambda tx, base=base: self._expire_batch(tx, context, base, cutoff)
            )
            if done < self.batch:
                return
            await asyncio.sleep(0)  # let requests waiting on the loop in between batches

    async def _expire_batch(
        self, tx: Transaction, context: RunContext, base: dict[str, int], cutoff: str
    ) -> tuple[int, dict[str, int]]:
        # A write function may run twice (group commit): it counts from `base`, what was
        # committed before it, never from what a rolled-back try added.
        counts = dict(base)
        recordings = await jobs_repo.recordings_older_than(tx.conn, cutoff, self.batch)
        for recording in recordings:
            if await keys_repo.store_using(tx.conn, recording.user_id, object_id=recording.object_id):
                counts["kept_store_objects"] += 1  # never a store's own object
            else:
                deleted = await delete_tree(tx, recording.user_id, recording.object_id)
                counts["deleted_objects"] += len(deleted)
            await jobs_repo.mark_expired(tx, recording)
            counts["expired_recordings"] += 1
        await jobs_repo.save_progress(tx, context.run_id, counts, context.checkpoint)
        return len(recordings), counts
