"""The database that keeps jobs and results: PostgreSQL (psycopg 3), or SQLite where none is configured.

Redis holds what is in flight; what lasts is here (posterq.jobs.ledger writes and reads it). One
SQL text serves both: placeholders are written `%s` (psycopg's) and become `?` for SQLite, JSON
goes to `jsonb` columns in PostgreSQL and to text in SQLite. The schema is created and upgraded
by migrate(), which every API and worker process runs at start (each step once, under a lock).

PostgreSQL is the one for a service on several hosts and the one the tests exercise; SQLite (a file
on this host, in the standard library) lets `make serve` run on a laptop with nothing to install.
"""

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from posterq.exceptions import DatabaseUnavailable

log = logging.getLogger(__name__)

#: Seconds to wait for a connection (or SQLite's write lock) before the store counts as down.
CONNECT_TIMEOUT = 5
#: Seconds a pooled PostgreSQL connection may have been idle and still be used without a check first.
CHECK_AFTER_IDLE = 1.0
# Any number, the same in every process: the advisory lock migrate() holds in PostgreSQL.
_MIGRATION_LOCK = 0x706F73746572

# Each step once, in order; a step is never edited after it shipped (add another instead).
# {json} is the type of a JSON column: jsonb in PostgreSQL, text in SQLite.
_MIGRATIONS = [
    (1, [
        """CREATE TABLE posterq_jobs (
            id text PRIMARY KEY,
            owner text NOT NULL DEFAULT '',
            source text NOT NULL,
            status text NOT NULL,
            lane text NOT NULL,
            tenant text NOT NULL,
            top_k integer,
            directory text,
            recursive boolean,
            enum_cursor text,
            enumerated boolean NOT NULL,
            total bigint NOT NULL DEFAULT 0,
            done bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            model {json},
            created_at double precision NOT NULL,
            claimed_at double precision,
            started_at double precision,
            finished_at double precision
        )""",
        "CREATE INDEX posterq_jobs_by_owner ON posterq_jobs (owner, created_at)",
        "CREATE INDEX posterq_jobs_by_status ON posterq_jobs (status)",
        # One row per item of a job, written pending when the item is known and filled in once:
        # (job_id, idx) is the unique key that stops a redelivered batch from writing twice.
        """CREATE TABLE posterq_results (
            job_id text NOT NULL REFERENCES posterq_jobs (id) ON DELETE CASCADE,
            idx bigint NOT NULL,
            name text NOT NULL,
            path text,
            status text NOT NULL,
            genres {json},
            scores {json},
            error_code text,
            error_message text,
            model_version text,
            worker text,
            finished_at double precision,
            PRIMARY KEY (job_id, idx)
        )""",
    ]),
    # Output files beside the folder (posterq.worker.outputs): where, and when it was written.
    (2, [
        "ALTER TABLE posterq_jobs ADD COLUMN output text",
        "ALTER TABLE posterq_jobs ADD COLUMN output_written_at double precision",
    ]),
    # Submissions a client can repeat (Idempotency-Key) and submissions that never completed (the
    # API died half-way): a job is `submitted` once its Redis side and its tasks are sent.
    (3, [
        "ALTER TABLE posterq_jobs ADD COLUMN submitted boolean NOT NULL DEFAULT TRUE",
        "ALTER TABLE posterq_jobs ADD COLUMN idempotency_key text",
        "CREATE UNIQUE INDEX posterq_jobs_by_idempotency_key ON posterq_jobs (owner, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
    ]),
    # The sweep deletes jobs finished more than result_ttl ago every few seconds: without this it
    # would read the whole table each time (every /analysis/ call is a job).
    (4, ["CREATE INDEX posterq_jobs_by_finished_at ON posterq_jobs (finished_at)"]),
    # The pool of a job that names a model ('' for the default pool, posterq.jobs.pools): where its
    # Redis side is, for a long-poll, a cancel and the sweep.
    (5, ["ALTER TABLE posterq_jobs ADD COLUMN pool text NOT NULL DEFAULT ''"]),
    # Services of several key prefixes may share one database (a test suite, a benchmark beside a
    # service): each sweep looks after its own prefix's jobs only.
    (6, ["ALTER TABLE posterq_jobs ADD COLUMN namespace text NOT NULL DEFAULT 'posterq'"]),
    # An Idempotency-Key is a service's own (two services on one database may be sent the same
    # key), and it names one request: the fingerprint of the request that made the job (sha256
    # hex, posterq.api.fingerprint) tells a retry from another request under the same key. Expiry reads
    # by service and finish time.
    (7, [
        "DROP INDEX posterq_jobs_by_idempotency_key",
        "CREATE UNIQUE INDEX posterq_jobs_by_idempotency_key ON posterq_jobs "
        "(namespace, owner, idempotency_key) WHERE idempotency_key IS NOT NULL",
        "ALTER TABLE posterq_jobs ADD COLUMN request_digest text",
        "CREATE INDEX posterq_jobs_by_namespace_finished_at ON posterq_jobs (namespace, finished_at)",
    ]),
    # Output files that never replace an existing file unless asked (output_overwrite), and whose
    # failure shows: the last error, the tries so far, and whether the error is final
    # (posterq.worker.outputs).
    (8, [
        "ALTER TABLE posterq_jobs ADD COLUMN output_overwrite boolean NOT NULL DEFAULT FALSE",
        "ALTER TABLE posterq_jobs ADD COLUMN output_error {json}",
        "ALTER TABLE posterq_jobs ADD COLUMN output_tries integer NOT NULL DEFAULT 0",
        "ALTER TABLE posterq_jobs ADD COLUMN output_failed boolean NOT NULL DEFAULT FALSE",
    ]),
    # A job-level error ({code, message}): a listing that kept failing ends its job as failed,
    # whatever was labelled before it stopped, so that a half-listed folder never reads as done.
    (9, ["ALTER TABLE posterq_jobs ADD COLUMN error {json}"]),
    # What tells jobs apart in a list: a job's name (free text the client gave at submission, NULL
    # for none; GET /jobs?name= finds it) and a directory job's folder as clients see it, below
    # its data root (the server's own paths are not theirs to see).
    (10, ["ALTER TABLE posterq_jobs ADD COLUMN name text",
          "ALTER TABLE posterq_jobs ADD COLUMN folder text"]),
    # The job a retry (its failed posters) or a rerun (its posters with another model) was made
    # from (api/rerun_routes.py), so that either can be traced back to the job it repeats.
    (11, ["ALTER TABLE posterq_jobs ADD COLUMN retry_of text",
          "ALTER TABLE posterq_jobs ADD COLUMN rerun_of text"]),
    # Each result row written once: what intake knows of an item (its name and path) is a row of
    # posterq_items, written when the item is known and never updated, and a result is inserted
    # into posterq_results once it exists (posterq.jobs.result_writes). A pending row filled in
    # later left a dead tuple per result; an item without a result row is pending.
    (12, [
        """CREATE TABLE posterq_items (
            job_id text NOT NULL REFERENCES posterq_jobs (id) ON DELETE CASCADE,
            idx bigint NOT NULL,
            name text NOT NULL,
            path text,
            PRIMARY KEY (job_id, idx)
        )""",
        "INSERT INTO posterq_items (job_id, idx, name, path) "
        "SELECT job_id, idx, name, path FROM posterq_results",
        "DELETE FROM posterq_results WHERE status = 'pending'",
        "ALTER TABLE posterq_results DROP COLUMN name",
        "ALTER TABLE posterq_results DROP COLUMN path",
    ]),
    # Results reused by content (posterq.jobs.reuse): each result names the bytes it was made from
    # (the poster's sha256) and the model that made them (its name beside model_version, and the
    # sha256 of its file), and says whether it was reused; the index finds a poster's stored
    # result by the two hashes. An item's twin_of: the index of an earlier item of the same job
    # with the same bytes; it is left out of the queue and given that item's result when it lands.
    # A job's `reuse` is its submission's "reuse" (false: classify every poster again).
    (13, [
        "ALTER TABLE posterq_results ADD COLUMN sha256 text",
        "ALTER TABLE posterq_results ADD COLUMN model_name text",
        "ALTER TABLE posterq_results ADD COLUMN model_sha256 text",
        "ALTER TABLE posterq_results ADD COLUMN reused boolean NOT NULL DEFAULT FALSE",
        "ALTER TABLE posterq_items ADD COLUMN twin_of bigint",
        "CREATE INDEX posterq_results_by_content ON posterq_results (sha256, model_sha256)",
        "CREATE INDEX posterq_items_by_twin ON posterq_items (job_id, twin_of) WHERE twin_of IS NOT NULL",
        "ALTER TABLE posterq_jobs ADD COLUMN reuse boolean NOT NULL DEFAULT TRUE",
    ]),
]
#: The schema's version once every migration has run.
SCHEMA_VERSION = _MIGRATIONS[-1][0]


def default_sqlite_path() -> Path:
    """Where results go when no database is configured: $XDG_DATA_HOME/posterq/posterq.sqlite3."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "posterq" / "posterq.sqlite3"


#: Connections one process may hold to PostgreSQL: the API's threads share them (a download holds
#: one while it streams), a worker process uses one or two.
POOL_SIZE = 16
_shared: dict[str, "Database"] = {}
_shared_lock = threading.Lock()


class Database:
    """Connections and transactions to the configured database, and its schema."""

    @classmethod
    def shared(cls, url: str) -> "Database":
        """The one Database of this URL in this process (its pool lives as long as the process)."""
        # One pool per process and URL: every JobStore of a process shares it, and no pool is ever
        # garbage-collected (psycopg_pool's finalizer would join its own threads from one of them).
        with _shared_lock:
            if url not in _shared:
                _shared[url] = cls(url)
            return _shared[url]

    def __init__(self, url: str = "", pool_size: int = POOL_SIZE):
        self.url = url
        self.dialect = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
        self._pool = None
        self._pool_size = pool_size
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            self.path = Path(url.removeprefix("sqlite:///")) if url else default_sqlite_path()

    def __repr__(self) -> str:
        # The URL may carry a password: say only which kind of database it is.
        return f"Database({self.dialect})"

    def sql(self, text: str) -> str:
        """text with this database's placeholders and JSON column type."""
        text = text.replace("{json}", "jsonb" if self.dialect == "postgresql" else "text")
        return text if self.dialect == "postgresql" else text.replace("%s", "?")

    def json(self, value):
        """value as this database takes a JSON parameter (None stays NULL)."""
        if value is None:
            return None
        if self.dialect == "postgresql":
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return json.dumps(value)

    @staticmethod
    def from_json(value):
        """A JSON column's value as Python (PostgreSQL gives it parsed, SQLite as text)."""
        return json.loads(value) if isinstance(value, str) else value

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        """One transaction: committed when the block ends, rolled back when it raises.

        Raises DatabaseUnavailable when the database cannot be reached (or is locked past
        CONNECT_TIMEOUT), so that callers answer 503 or retry instead of failing a request.
        """
        with self._guard():
            if self.dialect == "postgresql":
                with self._postgres_pool().connection() as connection:
                    yield Transaction(self, connection)
                    _used(connection)
            else:
                connection = self._sqlite_connection()
                try:
                    # IMMEDIATE: the write lock is taken now, so two writers never deadlock on
                    # an upgrade from a read lock.
                    connection.execute("BEGIN IMMEDIATE")
                    yield Transaction(self, connection)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                finally:
                    connection.close()

    @contextlib.contextmanager
    def autocommit(self) -> Iterator["Transaction"]:
        """Statements that each commit alone in PostgreSQL (SQLite: one transaction)."""
        # No BEGIN and no COMMIT: one statement is one round trip, and holds its row locks only
        # while it runs, never while the client waits.
        if self.dialect != "postgresql":
            with self.transaction() as tx:
                yield tx
            return
        with self._guard(), self._postgres_pool().connection() as connection:
            connection.autocommit = True
            try:
                yield Transaction(self, connection)
                _used(connection)
            finally:
                # The pool's next user expects a connection that opens transactions.
                with contextlib.suppress(Exception):
                    connection.autocommit = False

    @contextlib.contextmanager
    def unique_violation(self, error: Exception):
        """Raise `error` instead of the driver's error for a broken unique key within the block."""
        if self.dialect == "postgresql":
            import psycopg

            broken = (psycopg.errors.UniqueViolation,)
        else:
            broken = (sqlite3.IntegrityError,)
        try:
            yield
        except broken as exc:
            raise error from exc

    @contextlib.contextmanager
    def _guard(self):
        # The database's own "cannot reach" errors become one error with a stable code.
        from_driver = (sqlite3.OperationalError,)
        if self.dialect == "postgresql":
            import psycopg
            import psycopg_pool

            from_driver = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.InterfaceError)
        try:
            yield
        except from_driver as exc:
            raise DatabaseUnavailable(f"the results database cannot be reached: {exc}".strip()) from exc

    def _postgres_pool(self):
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # Imported here: the core and `posterq label` never need psycopg.
                from psycopg_pool import ConnectionPool

                # A pool per process (a forked child must not share its parent's sockets); each
                # connection is checked on the way out, so a restarted server costs one reconnect.
                self._pool = ConnectionPool(self.url, min_size=0, max_size=self._pool_size, open=True,
                                            timeout=CONNECT_TIMEOUT, check=_check,
                                            kwargs={"connect_timeout": CONNECT_TIMEOUT},
                                            name="posterq")
                self._pool_pid = os.getpid()
            return self._pool

    def _sqlite_connection(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=CONNECT_TIMEOUT, isolation_level=None,
                                     check_same_thread=False)
        # WAL: readers (the API) never wait for the workers' writes.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.transaction() as tx:
                tx.execute("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    def migrate(self, upto: int | None = None) -> list[int]:
        """Create or upgrade the schema (to step `upto`, default the last); return the steps applied."""
        with self.transaction() as tx:
            if self.dialect == "postgresql":
                # Processes starting together: one applies the steps, the others then find them done.
                tx.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            tx.execute("CREATE TABLE IF NOT EXISTS posterq_schema (version integer PRIMARY KEY)")
            current = tx.execute("SELECT COALESCE(MAX(version), 0) FROM posterq_schema").fetchone()[0]
            applied = []
            for version, statements in _MIGRATIONS:
                if current < version <= (upto or SCHEMA_VERSION):
                    for statement in statements:
                        tx.execute(statement)
                    tx.execute("INSERT INTO posterq_schema (version) VALUES (%s)", (version,))
                    applied.append(version)
        if applied:
            log.info("database schema upgraded to version %d", applied[-1])
        return applied

    def close(self) -> None:
        """Close the pool's connections."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _used(connection) -> None:
    # When the connection last answered (the pool's check of it may be skipped for a moment after).
    connection.posterq_answered_at = time.monotonic()


def _check(connection) -> None:
    # The pool's check of a connection before it is lent, a round trip of its own: a connection
    # that answered less than CHECK_AFTER_IDLE ago is lent without it, so that a statement costs
    # one round trip, not two. One idle longer is checked (a restarted server costs a reconnect);
    # a server gone since it answered fails the statement instead, as one gone mid-transaction does.
    from psycopg_pool import ConnectionPool

    if time.monotonic() - getattr(connection, "posterq_answered_at", float("-inf")) > CHECK_AFTER_IDLE:
        ConnectionPool.check_connection(connection)


class Transaction:
    """The statements of one transaction, in the database's own SQL."""

    def __init__(self, database: Database, connection):
        self.database, self.connection = database, connection

    def execute(self, text: str, params: tuple | list = ()):
        """Run one statement; return its cursor."""
        return self.connection.execute(self.database.sql(text), params)

    def executemany(self, text: str, rows: list) -> int:
        """Run one statement per row; return the rows it changed in all."""
        cursor = self.connection.cursor()
        cursor.executemany(self.database.sql(text), rows)
        return cursor.rowcount

    def returning_each(self, text: str, rows: list) -> list[tuple]:
        """Run one statement with a RETURNING clause per row; return every row they returned.

        psycopg sends them all in one pipeline (one round trip, not one per row).
        """
        if self.database.dialect != "postgresql":
            return [found for row in rows for found in self.connection.execute(self.database.sql(text), row)]
        returned = []
        with self.connection.cursor() as cursor:
            cursor.executemany(text, rows, returning=True)
            while True:
                returned.extend(cursor.fetchall())
                if not cursor.nextset():
                    break
        return returned

    def copy(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """Insert many rows: COPY in PostgreSQL (the fast path), one INSERT per row in SQLite."""
        if self.database.dialect == "postgresql":
            with self.connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def stream(self, text: str, params: tuple | list = (), size: int = 1000) -> Iterator[tuple]:
        """The rows of a query, `size` at a time, without holding them all in memory."""
        if self.database.dialect == "postgresql":
            # A named (server-side) cursor: PostgreSQL sends `size` rows per fetch.
            with self.connection.cursor(name="posterq_stream") as cursor:
                cursor.itersize = size
                cursor.execute(self.database.sql(text), params)
                yield from cursor
        else:
            yield from self.connection.execute(self.database.sql(text), params)
