"""The ledger: jobs and their results as rows in the database (posterq.jobs.database).

A job is one row of posterq_jobs. Each of its items is one row of posterq_items, written when the
item becomes known (at submission for uploads, chunk by chunk as a folder is enumerated) and never
updated, and its result one row of posterq_results, written once by the batch that classifies it
(posterq.jobs.result_writes); an item without a result is pending. The counts, the status and the
timings a client reads are the job row's, moved in the same statement as its results, so a
redelivered batch (whose results are written already) changes nothing, and a job is final exactly
when its last result lands.
"""

import time
from collections.abc import Iterator
from typing import NamedTuple

from posterq.exceptions import QueueFull, SubmissionExists, TooManyPosters
from posterq.jobs import result_writes
from posterq.jobs.admission import Quota
from posterq.jobs.database import Database
from posterq.jobs.keys import FINAL_STATUSES, JobStatus, ResultStatus
from posterq.jobs.result_writes import Made, text

_FINAL = tuple(status.value for status in FINAL_STATUSES)
_FINAL_MARKS = ", ".join(["%s"] * len(_FINAL))  # one parameter per final status
_JOB_COLUMNS = ("id", "owner", "source", "status", "lane", "tenant", "top_k", "directory", "recursive",
                "enum_cursor", "enumerated", "total", "done", "failed", "model", "created_at", "claimed_at",
                "started_at", "finished_at", "output", "output_written_at", "submitted", "idempotency_key",
                "pool", "request_digest", "output_overwrite", "output_error", "output_tries", "output_failed",
                "error", "name", "folder", "retry_of", "rerun_of", "reuse")
_SELECT_JOBS = f"SELECT {', '.join(_JOB_COLUMNS)} FROM posterq_jobs"
_ITEM_COLUMNS = ("job_id", "idx", "name", "path", "twin_of")
# An item and its result, a pending item's result columns NULL (its status reads `pending`).
_RESULT_COLUMNS = ("items.idx, items.name, COALESCE(results.status, %s), results.genres, results.scores, "
                   "results.error_code, results.error_message, results.worker, results.model_version, "
                   "results.reused")
_ITEMS_AND_RESULTS = ("posterq_items AS items LEFT JOIN posterq_results AS results "
                      "ON results.job_id = items.job_id AND results.idx = items.idx")
_NO_RESULT = ("NOT EXISTS (SELECT 1 FROM posterq_results AS results WHERE results.job_id = items.job_id "
              "AND results.idx = items.idx)")
# Makes a job final once every item it will ever have is known and has its result (the rule the
# batch's own write applies too, posterq.jobs.result_writes). Run after a change of `enumerated`,
# in the same transaction (the row is locked), so exactly one statement finishes the job.
_FINISH = f"""UPDATE posterq_jobs SET status = {result_writes.final_status('0')}, finished_at = %s
    WHERE id = %s AND {result_writes.complete('0', '0')}
      AND status IN ('{JobStatus.QUEUED.value}', '{JobStatus.RUNNING.value}')
    RETURNING {result_writes.FINISHED}"""


# Posters queued (admitted, not yet written) by one owner and by everyone, over the jobs not final.
_QUEUED = f"""SELECT COALESCE(SUM(CASE WHEN owner = %s THEN total - done - failed ELSE 0 END), 0),
    COALESCE(SUM(total - done - failed), 0) FROM posterq_jobs
    WHERE namespace = %s AND status IN ('{JobStatus.QUEUED.value}', '{JobStatus.RUNNING.value}')"""


class Finished(NamedTuple):
    """A job that became final: its status, the seconds it took, whether it writes an output file."""

    job_id: str
    status: str
    seconds: float
    has_output: bool


class Ledger:
    """Job rows and result rows: create, count in, read, page, stream, cancel, expire."""

    def __init__(self, database: Database, namespace: str = "posterq"):
        # namespace: the key prefix of the service whose jobs these are (Settings.key_prefix).
        self.db, self.namespace = database, namespace

    def create(self, record: dict, items: list[dict], quota: Quota | None = None) -> None:
        """Store a new job's row and a row for each of its items, all pending (all or nothing).

        The row is not `submitted` until mark_submitted(). Raises SubmissionExists when the
        owner's idempotency key already names a job (a retry racing its first try), and QueueFull
        when its items do not fit the quota (posterq.jobs.admission); a job without items (a
        folder, listed later) needs room for one poster.
        """
        row = {name: record.get(name) for name in _JOB_COLUMNS}
        row.update(status=JobStatus.QUEUED.value, total=len(items), done=0, failed=0, model=None,
                   submitted=False)
        with self.db.transaction() as tx, self.db.unique_violation(SubmissionExists(
                "a submission with this Idempotency-Key is being made")):
            if quota is not None:
                self._admit_all(tx, quota, max(1, len(items)))
            row["namespace"] = self.namespace
            names = [name for name in row if row[name] is not None]
            marks = ", ".join("%s" for _ in names)
            tx.execute(f"INSERT INTO posterq_jobs ({', '.join(names)}) VALUES ({marks})",
                       [row[name] for name in names])
            tx.copy("posterq_items", _ITEM_COLUMNS, _item_rows(record["id"], enumerate(items)))

    def delete(self, job_id: str) -> None:
        """Remove a job and its results (a submission that failed after its row was written)."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM posterq_jobs WHERE id = %s", (job_id,))

    def queued(self, owner: str = "") -> tuple[int, int]:
        """Posters queued (admitted, no result yet, job not final): (the owner's, everyone's)."""
        with self.db.transaction() as tx:
            mine, everyone = tx.execute(_QUEUED, (owner, self.namespace)).fetchone()
        return int(mine), int(everyone)

    def queued_by_pool(self) -> dict[str, int]:
        """Posters queued by pool ("" the default, else the model jobs named, held by a worker or not)."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT pool, COALESCE(SUM(total - done - failed), 0) FROM posterq_jobs "
                              "WHERE namespace = %s AND status IN (%s, %s) GROUP BY pool",
                              (self.namespace, JobStatus.QUEUED.value, JobStatus.RUNNING.value)).fetchall()
        return {pool: int(count) for pool, count in rows}

    def _room(self, tx, quota: Quota) -> tuple[int, int, int]:
        # Under the namespace's admission lock (held to the end of tx), so that two admissions
        # never both count the same room: (the owner's queued, everyone's, room left). SQLite's
        # BEGIN IMMEDIATE already makes writing transactions take turns.
        if self.db.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"posterq-admission:{self.namespace}",))
        mine, everyone = tx.execute(_QUEUED, (quota.owner, self.namespace)).fetchone()
        return int(mine), int(everyone), quota.room(int(mine), int(everyone))

    def _admit_all(self, tx, quota: Quota, wanted: int) -> None:
        # A job over the most its key may ever have queued would get 429 for ever: refused as too large.
        if wanted > quota.most:
            raise TooManyPosters(f"{wanted} posters is over the {quota.most} one job may have queued at once "
                                 "(GET /limits: max_posters_per_job); split it")
        mine, everyone, room = self._room(tx, quota)
        if wanted <= room:
            return
        if quota.key_limit is not None and quota.key_limit - mine < wanted:
            raise QueueFull(f"{mine} of your posters are queued; {wanted} more would pass the limit of "
                            f"{quota.key_limit} a key", "key_queue_full", mine, quota.key_limit, wanted)
        raise QueueFull(f"{everyone} posters are queued; {wanted} more would pass the limit of "
                        f"{quota.total_limit}", "queue_full", everyone, quota.total_limit, wanted)

    def add_found(self, job_id: str, found_before: int, items: list[dict], cursor: str,
                  quota: Quota | None = None) -> int | None:
        """Append a chunk of a folder's items (indexes from found_before on) and move its cursor on.

        Returns how many of the items (from the first) were written: with a quota, only those that
        fit it (an item already failed takes no room), the cursor then being the last written
        one's; 0 when none fit (the listing pauses). None when the job has moved on meanwhile
        (another enumeration of it got there first, or it was cancelled): nothing is written, so
        an item is never listed twice. An item with an "error" (a subfolder that cannot be
        listed) is written already failed.
        """
        with self.db.transaction() as tx:
            if quota is not None:
                room, taken = self._room(tx, quota)[2], 0
                for taken, item in enumerate(items, 1):
                    room -= 0 if item.get("error") else 1
                    if room < 0:
                        taken -= 1
                        break
                if taken < len(items):
                    items = items[:taken]
                    if not items:
                        return 0
                    cursor = items[-1]["cursor"]
            failed = sum(1 for item in items if item.get("error"))
            moved = tx.execute(
                "UPDATE posterq_jobs SET total = total + %s, failed = failed + %s, enum_cursor = %s "
                "WHERE id = %s AND total = %s AND NOT enumerated AND status IN (%s, %s)",
                (len(items), failed, cursor, job_id, found_before, JobStatus.QUEUED.value,
                 JobStatus.RUNNING.value)).rowcount
            if not moved:
                return None
            numbered = list(enumerate(items, start=found_before))
            tx.copy("posterq_items", _ITEM_COLUMNS, _item_rows(job_id, numbered))
            # Failed at listing: the result is known now, and written now.
            now = time.time()
            tx.copy("posterq_results", result_writes.NAMES,
                    [result_writes.row(self.db, Made(job_id, index, {"error": item["error"]}, {}, now))
                     for index, item in numbered if item.get("error")])
        return len(items)

    def finish_enumeration(self, job_id: str, error: dict | None = None) -> "Finished | None":
        """Mark the job's folder as listed (as far as it will be); return the job when that finished it.

        error: why the listing ended early ({code, message}); the job then ends failed.
        """
        with self.db.transaction() as tx:
            tx.execute("UPDATE posterq_jobs SET enumerated = TRUE, error = COALESCE(%s, error) WHERE id = %s",
                       (self.db.json(error) if error else None, job_id))
            row = tx.execute(_FINISH, (time.time(), job_id)).fetchone()
        return Finished(job_id, row[0], float(row[1]), bool(row[2])) if row else None

    def pending_after(self, job_id: str, after: int, limit: int) -> list[tuple[int, str, str | None]]:
        """Up to `limit` pending items with an index above `after`, in order: (index, name, path)."""
        with self.db.transaction() as tx:
            return [tuple(row) for row in tx.execute(
                # A twin (posterq.jobs.reuse) is never queued: it gets its first's result.
                f"SELECT idx, name, path FROM posterq_items AS items WHERE job_id = %s AND idx > %s "
                f"AND twin_of IS NULL AND {_NO_RESULT} ORDER BY idx LIMIT %s", (job_id, after, limit))]

    def write(self, outcomes: list[tuple[str, int, dict, str]], model: dict, claimed_at: float
              ) -> tuple[list[tuple[str, int, dict, str]], list["Finished"]]:
        """Write each outcome's result once; return (outcomes written, jobs finished).

        Outcomes whose result is written already (a redelivered batch) or whose job is final
        (cancelled) write nothing. PostgreSQL: one statement, committed alone (one round trip).
        """
        now = time.time()
        made = [Made(job_id, index, result, model or {}, now) for job_id, index, result, _ in outcomes]
        if self.db.dialect == "postgresql":
            with self.db.autocommit() as tx:
                keys, finished = result_writes.write_postgresql(tx, made, model, claimed_at, now)
        else:
            with self.db.transaction() as tx:
                keys, finished = result_writes.write_sqlite(tx, made, model, claimed_at, now)
        return ([outcome for outcome in outcomes if (outcome[0], outcome[1]) in keys],
                [Finished(*job) for job in finished])

    def get(self, job_id: str) -> dict | None:
        """The job's row as a dict (None when this service has no such job)."""
        # Every read by id is this service's too: another service on the database (another key
        # prefix) answers as if its jobs did not exist, and cannot cancel them.
        with self.db.transaction() as tx:
            row = tx.execute(f"{_SELECT_JOBS} WHERE id = %s AND namespace = %s",
                             (job_id, self.namespace)).fetchone()
        return None if row is None else self._job(row)

    def _job(self, row) -> dict:
        job = dict(zip(_JOB_COLUMNS, row, strict=True))
        job["model"] = self.db.from_json(job["model"])
        job["enumerated"], job["submitted"] = bool(job["enumerated"]), bool(job["submitted"])
        job["output_error"] = self.db.from_json(job["output_error"])
        job["error"] = self.db.from_json(job["error"])
        job["output_overwrite"] = bool(job["output_overwrite"])
        job["output_failed"] = bool(job["output_failed"])
        job["reuse"] = bool(job["reuse"])
        return job

    def owner(self, job_id: str) -> str | None:
        """Who may see the job ("" when anybody), or None when there is no such job."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT owner FROM posterq_jobs WHERE id = %s AND namespace = %s",
                             (job_id, self.namespace)).fetchone()
        return None if row is None else row[0]

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Items offset..offset+limit in order, each with its result once it has one."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {_RESULT_COLUMNS} FROM {_ITEMS_AND_RESULTS} WHERE items.job_id = %s "
                              "AND items.idx >= %s AND items.idx < %s ORDER BY items.idx",
                              (ResultStatus.PENDING.value, job_id, offset,
                               offset + limit if limit is not None else 2**62)).fetchall()
        return [self._result(row) for row in rows]

    def stream(self, job_id: str) -> Iterator[dict]:
        """Every finished result of a job in order, read a page at a time (for downloads)."""
        with self.db.transaction() as tx:
            for row in tx.stream(f"SELECT {_RESULT_COLUMNS} FROM {_ITEMS_AND_RESULTS} "
                                 "WHERE items.job_id = %s AND results.idx IS NOT NULL ORDER BY items.idx",
                                 (ResultStatus.PENDING.value, job_id)):
                yield self._result(row)

    def _result(self, row) -> dict:
        index, name, status, genres, scores, code, message, worker, version, reused = row
        if status == ResultStatus.PENDING.value:
            return {"index": index, "name": name, "status": status}
        return {"index": index, "name": name, "path": name, "status": status,
                "genres": self.db.from_json(genres) or [],
                "scores": self.db.from_json(scores) or {},
                "error": {"code": code, "message": message or ""} if code else None, "worker": worker,
                "model_version": version, "reused": bool(reused)}

    def cancel(self, job_id: str) -> bool:
        """Mark a job cancelled unless it is final; True when this call cancelled it."""
        with self.db.transaction() as tx:
            return tx.execute(f"UPDATE posterq_jobs SET status = %s, finished_at = %s WHERE id = %s "
                              f"AND namespace = %s AND status NOT IN ({_FINAL_MARKS})",
                              (JobStatus.CANCELLED.value, time.time(), job_id, self.namespace, *_FINAL)
                              ).rowcount == 1

    def active(self, pool: str = "") -> list[dict]:
        """Rows of one pool's jobs not final yet (what that pool's sweep looks after)."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"{_SELECT_JOBS} WHERE status IN (%s, %s) AND submitted AND pool = %s "
                              "AND namespace = %s", (JobStatus.QUEUED.value, JobStatus.RUNNING.value, pool,
                                                     self.namespace)).fetchall()
        return [self._job(row) for row in rows]

    def pool_busy(self, pool: str) -> bool:
        """True while a job of the pool is not final (being submitted, queued or running)."""
        with self.db.transaction() as tx:
            return tx.execute("SELECT 1 FROM posterq_jobs WHERE pool = %s AND namespace = %s "
                              "AND status IN (%s, %s) LIMIT 1",
                              (pool, self.namespace, JobStatus.QUEUED.value, JobStatus.RUNNING.value)
                              ).fetchone() is not None

    def mark_submitted(self, job_id: str) -> None:
        """Record that a job's submission completed: its Redis side is written and its tasks sent."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE posterq_jobs SET submitted = TRUE WHERE id = %s", (job_id,))

    def abandoned(self, older_than: float, pool: str = "") -> list[dict]:
        """One pool's jobs whose submission began more than older_than seconds ago and never completed."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"{_SELECT_JOBS} WHERE NOT submitted AND pool = %s AND namespace = %s "
                              "AND created_at < %s", (pool, self.namespace,
                                                      time.time() - older_than)).fetchall()
        return [self._job(row) for row in rows]

    def by_idempotency_key(self, owner: str, key: str, within: float) -> dict | None:
        """The owner's job made with this Idempotency-Key less than `within` seconds ago, if any.

        An older one lets its key go, so that the key makes a new job.
        """
        with self.db.transaction() as tx:
            row = tx.execute(f"{_SELECT_JOBS} WHERE namespace = %s AND owner = %s "
                             "AND idempotency_key = %s", (self.namespace, owner, key)).fetchone()
            if row is None:
                return None
            job = self._job(row)
            if job["created_at"] >= time.time() - within:
                return job
            tx.execute("UPDATE posterq_jobs SET idempotency_key = NULL WHERE id = %s", (job["id"],))
        return None

    def page(self, owner: str | None, status: str | None, offset: int, limit: int,
             name: str | None = None) -> list[dict]:
        """Submitted jobs, newest first: an owner's (None: everybody's), of one status or all.

        name: only jobs whose name contains it (case-sensitive, no wildcards).
        """
        where, params = ["submitted", "namespace = %s"], [self.namespace]
        if owner is not None:
            where.append("owner = %s")
            params.append(owner)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if name is not None:
            # A plain substring test (LIKE would read % and _ in the name as wildcards, and ignore
            # case in SQLite only): the same answer in both databases.
            where.append("strpos(name, %s) > 0" if self.db.dialect == "postgresql" else "instr(name, %s) > 0")
            params.append(name)
        with self.db.transaction() as tx:
            rows = tx.execute(f"{_SELECT_JOBS} WHERE {' AND '.join(where)} "
                              "ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                              (*params, limit, offset)).fetchall()
        return [self._job(row) for row in rows]

    def outputs_due(self, pool: str = "") -> list[str]:
        """One pool's finished jobs whose output file is neither written nor failed for good."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id FROM posterq_jobs WHERE output IS NOT NULL AND pool = %s "
                              "AND namespace = %s AND output_written_at IS NULL AND NOT output_failed "
                              "AND status IN (%s, %s)",
                              (pool, self.namespace, JobStatus.DONE.value, JobStatus.FAILED.value)).fetchall()
        return [row[0] for row in rows]

    def output_written(self, job_id: str) -> None:
        """Record that the job's output file is complete."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE posterq_jobs SET output_written_at = %s, output_error = NULL WHERE id = %s",
                       (time.time(), job_id))

    def output_failed(self, job_id: str, error: dict, permanent: bool, most_tries: int) -> bool:
        """Record a failed try of the job's output file; True when its error is final (no more tries)."""
        with self.db.transaction() as tx:
            # The count lives in the row, so the task's own retries and the sweep's nudges share one bound.
            row = tx.execute("UPDATE posterq_jobs SET output_tries = output_tries + 1, output_error = %s, "
                             "output_failed = (%s OR output_tries + 1 >= %s) WHERE id = %s "
                             # A try that raced another (the sweep's nudge beside the task) records
                             # nothing once the other wrote the file or recorded its final error.
                             "AND output_written_at IS NULL AND NOT output_failed RETURNING output_failed",
                             (self.db.json(error), permanent, most_tries, job_id)).fetchone()
        return row is None or bool(row[0])

    def expire(self, older_than: float, most: int = 100) -> int:
        """Delete up to `most` of this service's jobs (with their results) finished over older_than s ago."""
        # The namespace too: a service with a short result TTL must not delete the finished jobs
        # of another service sharing the database.
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM posterq_jobs WHERE id IN (SELECT id FROM posterq_jobs "
                              "WHERE namespace = %s AND finished_at < %s LIMIT %s)",
                              (self.namespace, time.time() - older_than, most)).rowcount

    def items_of(self, job_id: str, failed_only: bool) -> list[tuple[int, str, str | None]]:
        """A job's items in order as (index, name, path): the failed ones only, or every one."""
        where, params = "items.job_id = %s", [job_id]
        if failed_only:
            where, params = f"{where} AND results.status = %s", [job_id, ResultStatus.ERROR.value]
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT items.idx, items.name, items.path FROM {_ITEMS_AND_RESULTS} "
                              f"WHERE {where} ORDER BY items.idx", params).fetchall()
        return [(int(index), name, path) for index, name, path in rows]

    def link(self, job_id: str, column: str, original: str) -> None:
        """Record that job_id repeats `original` (column: "retry_of" or "rerun_of"), with its folder."""
        if column not in ("retry_of", "rerun_of"):
            raise ValueError(f"no link column {column!r}")
        with self.db.transaction() as tx:
            # The folder too, so that the new job shows where its posters came from as the old one did.
            tx.execute(f"UPDATE posterq_jobs SET {column} = %s, folder = (SELECT folder FROM posterq_jobs "
                       "WHERE id = %s) WHERE id = %s", (original, original, job_id))


def _item_rows(job_id: str, numbered) -> list[tuple]:
    # posterq_items' rows of (index, item) pairs: what intake knows of each item.
    return [(job_id, index, text(item["name"]), item.get("path"), item.get("twin_of"))
            for index, item in numbered]
