"""Which queued batches start now: priorities, a per-team limit and fair share between teams.

Capacity is counted in runs at once (a batch started with ``workers`` = 3 holds 3 of its team's
slots and 3 of the bench's). Each round picks, among the queued batches whose team has a free
slot, the one of the lowest priority value (members' batches before bulk re-verifications), then
of the team holding the fewest slots (fair share: a team with 50 queued batches does not starve
a team with one), then the oldest; it gets as many workers as its runs, its spec, its team's
free slots and the bench's free slots allow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from smartfab.testbench.models import QueuedBatch


@dataclass(frozen=True)
class Capacity:
    """Runs at once: per team, and on the whole bench."""

    per_team: int
    total: int


@dataclass(frozen=True)
class Start:
    """Start ``batch`` with ``workers`` runs at once."""

    batch: QueuedBatch
    workers: int


def plan_starts(
    queued: Sequence[QueuedBatch],
    running: Sequence[QueuedBatch],
    capacity: Capacity,
    wanted_workers: dict[str, int] | None = None,
) -> list[Start]:
    """The batches of ``queued`` to start now, given those ``running``.

    ``wanted_workers``: batch id -> the workers its spec asks for (default: one per run).
    """
    used: Counter[str] = Counter()
    for batch in running:
        used[batch.team] += batch.workers
    free = capacity.total - sum(used.values())
    waiting = list(queued)
    starts: list[Start] = []
    while free > 0:
        eligible = [b for b in waiting if used[b.team] < capacity.per_team]
        if not eligible:
            break
        batch = min(eligible, key=lambda b: (b.priority, used[b.team], b.submitted_at, b.id))
        wanted = (wanted_workers or {}).get(batch.id) or batch.runs
        workers = max(1, min(wanted, batch.runs, capacity.per_team - used[batch.team], free))
        starts.append(Start(batch, workers))
        used[batch.team] += workers
        free -= workers
        waiting.remove(batch)
    return starts
