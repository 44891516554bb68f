"""A batch's results written once: how a result becomes a row, and the statement that writes a batch.

What intake knows of an item (its name and path) is a row of posterq_items, never updated; a
result is inserted into posterq_results once, when it exists, and its key (job_id, idx) stops a
redelivered batch from writing it twice (ON CONFLICT DO NOTHING). The jobs' counts move in the
same statement as their results, and the one that writes a job's last result finishes it.

PostgreSQL takes a batch as ONE statement run alone in its transaction (autocommit): it locks the
batch's jobs that are not final in id order (no deadlock between batches), inserts their results,
counts them per job and moves each job's counts, status and timings. So a batch costs one round
trip, and no row lock is held while the client waits on the network. SQLite has no round trips: a
few statements in one transaction give the same answers.
"""

from collections.abc import Callable
from typing import NamedTuple

from posterq.files import display_name
from posterq.jobs.keys import FINAL_STATUSES, JobStatus, ResultStatus

_FINAL = ", ".join(f"'{status.value}'" for status in sorted(FINAL_STATUSES))
_OK, _ERROR = ResultStatus.OK.value, ResultStatus.ERROR.value


class Made(NamedTuple):
    """What one result row is made from."""

    job_id: str
    index: int
    result: dict  # a worker's result (posterq.results.row, with its worker), or {"error": ...}
    model: dict  # the model that made it: name, version, sha256 of its file ({} for none)
    now: float


class Column(NamedTuple):
    """A column of posterq_results: its name, its PostgreSQL type, and its value for a row."""

    name: str
    type: str
    value: Callable[[Made], object]


def _error(made: Made) -> dict:
    return made.result.get("error") or {}


#: Every column a result row stores, in one place: a new column is one line here (and its migration).
COLUMNS = (
    Column("job_id", "text", lambda made: made.job_id),
    Column("idx", "bigint", lambda made: made.index),
    Column("status", "text", lambda made: _ERROR if _error(made) else _OK),
    Column("genres", "jsonb", lambda made: made.result.get("genres")),
    Column("scores", "jsonb", lambda made: made.result.get("scores")),
    Column("error_code", "text", lambda made: _error(made).get("code")),
    Column("error_message", "text", lambda made: text(_error(made).get("message"))),
    Column("worker", "text", lambda made: made.result.get("worker")),
    Column("model_version", "text", lambda made: made.model.get("version")),
    Column("finished_at", "double precision", lambda made: made.now),
    # The poster's bytes and the model's identity: what posterq.jobs.reuse finds a result by.
    Column("sha256", "text", lambda made: made.result.get("sha256")),
    Column("model_name", "text", lambda made: made.model.get("name")),
    Column("model_sha256", "text", lambda made: made.model.get("sha256")),
    Column("reused", "boolean", lambda made: bool(made.result.get("reused"))),
)
NAMES = tuple(column.name for column in COLUMNS)
_LIST = ", ".join(NAMES)


def row(database, made: Made) -> tuple:
    """A result's row as the database takes it as parameters (JSON columns as database.json makes them)."""
    return tuple(database.json(column.value(made)) if column.type == "jsonb" else column.value(made)
                 for column in COLUMNS)


def text(value: str | None) -> str | None:
    """A name or message as a text column holds it."""
    # PostgreSQL's text cannot hold a NUL byte, and no file system allows one in a name: dropped.
    # Nor a lone surrogate (a name's bytes that are not UTF-8): shown as \xNN, never refused.
    return display_name(value.replace("\x00", "")) if value else value


def complete(ok: str, errors: str) -> str:
    """SQL: true when the job row, `ok` and `errors` results more, holds every item it will ever have."""
    return f"enumerated AND done + {ok} + failed + {errors} >= total"


def final_status(ok: str) -> str:
    """SQL: the status a complete job ends with, `ok` results more: failed when it classified none of
    its posters or its listing gave up (a job-level error), else done."""
    return (f"CASE WHEN done + {ok} = 0 OR error IS NOT NULL THEN '{JobStatus.FAILED.value}' "
            f"ELSE '{JobStatus.DONE.value}' END")


def _count_in(ok: str, errors: str, mark: Callable[[str], str]) -> str:
    # The SET clause that counts `ok` and `errors` results into a job row that is not final, and
    # finishes the job when they complete it. mark(name): the dialect's named parameter.
    finishes = complete(ok, errors)
    return (f"done = done + {ok}, failed = failed + {errors}, "
            f"status = CASE WHEN {finishes} THEN {final_status(ok)} ELSE '{JobStatus.RUNNING.value}' END, "
            f"finished_at = CASE WHEN {finishes} THEN {mark('now')} ELSE finished_at END, "
            f"started_at = COALESCE(started_at, {mark('now')}), "
            f"claimed_at = COALESCE(claimed_at, {mark('claimed_at')}), "
            f"model = COALESCE(model, {mark('model')})")


#: What a job that a write finished reports: its status, its seconds, whether it has an output file.
FINISHED = "status, finished_at - created_at AS seconds, output IS NOT NULL AS has_output"
_WAS_FINISHED = f"status IN ('{JobStatus.DONE.value}', '{JobStatus.FAILED.value}')"

# One batch, one statement. `live`: the batch's jobs that are not final, locked in id order (a
# cancelled job takes no results; a cancel waits for this statement, or this one for it). `written`:
# the results of those jobs that were not written before. `moved`: each job's counts, status and
# timings. Its answer: a row per result written (kind 'w'), and one per job finished (kind 'f').
_WRITE = f"""WITH batch AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
            AS given ({', '.join(f'{column.name} {column.type}' for column in COLUMNS)})),
    live AS MATERIALIZED (
        SELECT id FROM posterq_jobs WHERE id IN (SELECT job_id FROM batch) AND status NOT IN ({_FINAL})
        ORDER BY id FOR NO KEY UPDATE),
    written AS (
        INSERT INTO posterq_results ({_LIST}) SELECT {_LIST} FROM batch WHERE job_id IN (SELECT id FROM live)
        ON CONFLICT (job_id, idx) DO NOTHING RETURNING job_id, idx, status),
    counted AS (
        SELECT job_id AS counted_id, count(*) FILTER (WHERE status = '{_OK}') AS ok_count,
            count(*) FILTER (WHERE status <> '{_OK}') AS error_count FROM written GROUP BY job_id),
    moved AS (
        UPDATE posterq_jobs SET {_count_in('ok_count', 'error_count', lambda name: f'%({name})s')}
        FROM counted WHERE id = counted_id RETURNING id, {FINISHED}, {_WAS_FINISHED} AS finished)
    SELECT 'w', job_id, idx, NULL::text, NULL::double precision, NULL::boolean FROM written
    UNION ALL
    SELECT 'f', id, NULL::bigint, status, seconds, has_output FROM moved WHERE finished"""


def write_postgresql(tx, made: list[Made], model: dict | None, claimed_at: float, now: float
                     ) -> tuple[set[tuple[str, int]], list[tuple[str, str, float, bool]]]:
    """Write a batch in one statement (tx in autocommit): ((job id, index) written, jobs finished)."""
    from psycopg.types.json import Jsonb

    rows = [{column.name: column.value(one) for column in COLUMNS} for one in made]
    answer = tx.connection.execute(_WRITE, {"rows": Jsonb(rows), "now": now, "claimed_at": claimed_at,
                                            "model": tx.database.json(model or None)}).fetchall()
    written = {(job_id, int(index)) for kind, job_id, index, *_ in answer if kind == "w"}
    finished = [(job_id, status, float(seconds), bool(output))
                for kind, job_id, _, status, seconds, output in answer if kind == "f"]
    return written, finished


_INSERT = (f"INSERT INTO posterq_results ({_LIST}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
           "ON CONFLICT (job_id, idx) DO NOTHING RETURNING idx, status")
_MOVE = (f"UPDATE posterq_jobs SET {_count_in(':ok', ':errors', lambda name: f':{name}')} "
         f"WHERE id = :job RETURNING {FINISHED}, {_WAS_FINISHED}")


def write_sqlite(tx, made: list[Made], model: dict | None, claimed_at: float, now: float
                 ) -> tuple[set[tuple[str, int]], list[tuple[str, str, float, bool]]]:
    """Write a batch in a few statements of one transaction: ((job id, index) written, jobs finished)."""
    by_job: dict[str, list[Made]] = {}
    for one in made:
        by_job.setdefault(one.job_id, []).append(one)
    written, finished = set(), []
    for job_id in sorted(by_job):
        state = tx.execute("SELECT status FROM posterq_jobs WHERE id = %s", (job_id,)).fetchone()
        if state is None or state[0] in {status.value for status in FINAL_STATUSES}:
            continue
        rows = tx.returning_each(_INSERT, [row(tx.database, one) for one in by_job[job_id]])
        if not rows:
            continue
        written.update((job_id, int(index)) for index, _ in rows)
        ok = sum(1 for _, status in rows if status == _OK)
        status, seconds, output, done = tx.connection.execute(_MOVE, {
            "ok": ok, "errors": len(rows) - ok, "now": now, "claimed_at": claimed_at,
            "model": tx.database.json(model or None), "job": job_id}).fetchone()
        if done:
            finished.append((job_id, status, float(seconds), bool(output)))
    return written, finished
