"""The queue (durable, migrated, refusing a newer one) and the plan (priorities, per-team limit,
fair share), without a hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from smartfab.errors import TestBenchError
from smartfab.testbench.models import BatchState, Priority, QueuedBatch
from smartfab.testbench.plan import Capacity, plan_starts
from smartfab.testbench.queue import BatchQueue, head_revision

T0 = 1_700_000_000.0


def batch(n: int, team: str = "acme", runs: int = 4, **more: object) -> QueuedBatch:
    values: dict[str, object] = {
        "id": f"tb-{n:012x}",
        "program": "probe",
        "version": 1,
        "digest": "0123456789ab",
        "spec": "probe",
        "team": team,
        "submitted_by": "ben",
        "submitted_at": T0 + n,
        "runs": runs,
        "workers": runs,
        "batch_id": f"probe-{n:012x}",
        "parameters": {"x": [1, 2]},
    }
    values.update(more)
    return QueuedBatch.model_validate(values)


@pytest.fixture
def sf_queue(tmp_path: Path) -> BatchQueue:
    return BatchQueue.open(f"sqlite:///{tmp_path / 'bench' / 'queue.sqlite'}")


def test_a_queued_batch_is_kept_across_reopening(sf_queue: BatchQueue, tmp_path: Path) -> None:
    sf_queue.add(batch(1))
    sf_queue.add(batch(2, team="voltronic"))
    sf_queue.close()
    again = BatchQueue.open(f"sqlite:///{tmp_path / 'bench' / 'queue.sqlite'}")
    assert again.get(batch(1).id) == batch(1)
    assert [b.id for b in again.batches(teams=["voltronic"])] == [batch(2).id]
    assert [b.id for b in again.batches()] == [batch(2).id, batch(1).id]  # newest first


def test_states_move_forward_only(sf_queue: BatchQueue) -> None:
    sf_queue.add(batch(1))
    assert sf_queue.mark_running(batch(1).id, pid=123, pid_started=T0, workers=2)
    assert not sf_queue.mark_running(batch(1).id, pid=456, pid_started=T0, workers=2)
    running = sf_queue.get(batch(1).id)
    assert running is not None
    assert (running.state, running.pid, running.workers, running.attempts) == (
        BatchState.running, 123, 2, 1,
    )  # fmt: skip
    assert sf_queue.requeue(batch(1).id, "resumed")
    assert sf_queue.in_state(BatchState.queued)[0].pid is None
    assert sf_queue.mark_ended(batch(1).id, BatchState.finished, "4 of 4 runs passed")
    assert not sf_queue.requeue(batch(1).id, "again")
    assert not sf_queue.mark_ended(batch(1).id, BatchState.failed)
    ended = sf_queue.get(batch(1).id)
    assert ended is not None and ended.state is BatchState.finished and ended.ended_at


def test_cancel_ends_a_queued_batch_and_marks_a_running_one(sf_queue: BatchQueue) -> None:
    sf_queue.add(batch(1))
    sf_queue.add(batch(2))
    sf_queue.mark_running(batch(2).id, pid=123, pid_started=T0, workers=1)
    queued = sf_queue.request_cancel(batch(1).id)
    running = sf_queue.request_cancel(batch(2).id)
    assert queued is not None and queued.state is BatchState.cancelled
    assert running is not None and running.state is BatchState.running
    assert running.cancel_requested
    assert sf_queue.request_cancel("tb-000000000099") is None


def test_queue_is_at_the_newest_revision_and_refuses_a_newer_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.sqlite'}"
    queue = BatchQueue.open(url)
    with queue.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            head_revision()
        )
    with queue.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    queue.close()
    with pytest.raises(TestBenchError, match=r"revision '9999', newer than this smartfab"):
        BatchQueue.open(url)


def test_a_bad_database_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(TestBenchError, match="nosuchdb://x"):
        BatchQueue.open("nosuchdb://x")


def test_members_batches_start_before_bulk_ones() -> None:
    bulk = batch(1, priority=Priority.bulk)
    member = batch(2)
    starts = plan_starts([bulk, member], [], Capacity(per_team=4, total=4))
    assert [s.batch.id for s in starts] == [member.id]
    assert starts[0].workers == 4


def test_per_team_limit_and_fair_share() -> None:
    # acme submitted three batches before voltronic and iot submitted one each
    queued = [batch(1), batch(2), batch(3), batch(4, "voltronic"), batch(5, "iot")]
    starts = plan_starts(queued, [], Capacity(per_team=2, total=6))
    by_team: dict[str, int] = {}
    for start in starts:
        by_team[start.batch.team] = by_team.get(start.batch.team, 0) + start.workers
    assert by_team == {"acme": 2, "voltronic": 2, "iot": 2}
    # with acme at its limit, its next batch waits while another team's starts
    running = [batch(1, workers=2)]
    starts = plan_starts([batch(2), batch(4, "voltronic")], running, Capacity(2, 4))
    assert [(s.batch.team, s.workers) for s in starts] == [("voltronic", 2)]


def test_a_team_with_many_batches_does_not_starve_another() -> None:
    queued = [batch(n) for n in range(1, 20)] + [batch(50, "voltronic")]
    running = [batch(100, workers=1)]
    starts = plan_starts(queued, running, Capacity(per_team=2, total=2))
    assert [s.batch.team for s in starts] == ["voltronic"]


def test_no_start_without_a_free_slot() -> None:
    assert plan_starts([batch(1)], [batch(2, "iot", workers=2)], Capacity(2, 2)) == []


def test_a_queue_of_the_first_revision_is_upgraded_in_place(tmp_path: Path) -> None:
    """A queue written at revision 0001 (before break-glass) keeps its batches at the head."""
    from alembic import command

    from smartfab.testbench.queue import _alembic_config

    url = f"sqlite:///{tmp_path / 'queue.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(
            sa.text(
                "INSERT INTO testbench_batches VALUES (:id, 'probe', 1, '0123456789ab', 'probe',"
                " 'acme', 'ben', 1.0, 0, 'queued', 2, 2, 'probe-1', '{}', NULL, NULL, NULL,"
                " NULL, 0, 0, '')"
            ),
            {"id": "tb-000000000001"},
        )
    engine.dispose()
    queue = BatchQueue.open(url)
    found = queue.get("tb-000000000001")
    assert found is not None and found.team == "acme" and found.runs == 2
    with queue.engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert revision == head_revision() != "0001"
    assert queue.break_glass() == []
