"""The state store: SQLite in WAL mode, the only module that speaks SQL.

Records runs, tasks, instances (per run, with the reason each ran or was skipped), attempts
(exit code, timings, executor handle, log paths) and, per job, the latest known outcome and
fingerprint of every instance, which is what `plan` compares against. Every change is one
transaction; with WAL and synchronous=NORMAL a commit costs microseconds and a killed runner
leaves the database consistent (at worst without its last transaction).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CurrentInstance", "State", "default_state_dir"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    manifest_digest TEXT,
    manifest_files TEXT,
    git_commit TEXT,
    pid INTEGER,
    host TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    user TEXT
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, id);
CREATE TABLE IF NOT EXISTS tasks (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    instances INTEGER NOT NULL,
    PRIMARY KEY (run_id, task)
);
CREATE TABLE IF NOT EXISTS instances (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    fingerprint TEXT,
    exit_code INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    ended_at REAL,
    description TEXT,
    PRIMARY KEY (run_id, task, idx)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    executor TEXT,
    handle TEXT,
    started_at REAL,
    ended_at REAL,
    stdout TEXT,
    stderr TEXT,
    reason TEXT,
    PRIMARY KEY (run_id, task, idx, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_state ON attempts (state);
CREATE TABLE IF NOT EXISTS log_copies (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    stream TEXT NOT NULL,
    uri TEXT NOT NULL,
    PRIMARY KEY (run_id, task, idx, attempt, stream)
);
CREATE TABLE IF NOT EXISTS current (
    job TEXT NOT NULL,
    task TEXT NOT NULL,
    idx INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT,
    parts TEXT,
    PRIMARY KEY (job, task, idx)
);
"""


def _who() -> str | None:
    """Who starts a run: $RUNNER_USER (the dashboard sets it to its user), else the login."""
    import getpass

    try:
        return os.environ.get("RUNNER_USER") or getpass.getuser()
    except (OSError, KeyError):
        return None


@dataclass(frozen=True)
class Adoption:
    """An attempt an interrupted run left with a scheduler that can be followed by handle:
    the next run takes it over instead of submitting the instance again."""

    executor: str
    handle: str
    fingerprint: str | None  # the instance's, when it was submitted
    stdout: str
    stderr: str
    started_at: float | None  # when it began, if it had


def default_state_dir(base: Path) -> Path:
    """`RUNNER_STATE_DIR` if set, else `.runner/` in `base`."""
    env = os.environ.get("RUNNER_STATE_DIR")
    return Path(env) if env else base / ".runner"


@dataclass(frozen=True)
class CurrentInstance:
    """The latest known outcome of one instance of a job."""

    run_id: int
    state: str
    fingerprint: str | None
    parts: dict[str, str]


class State:
    """A connection to the state database of one state directory."""

    def __init__(self, directory: Path, *, create: bool = True) -> None:
        self.directory = directory
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        elif not (directory / "state.db").exists():
            raise FileNotFoundError(directory / "state.db")
        self.db = sqlite3.connect(
            directory / "state.db", isolation_level=None, timeout=30, check_same_thread=False
        )
        self._held = False
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.executescript(_SCHEMA)  # idempotent, and executescript commits by itself
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(runs)")}
        if "user" not in columns:  # a state store from before runs recorded who started them
            try:
                self.db.execute("ALTER TABLE runs ADD COLUMN user TEXT")
            except sqlite3.OperationalError as e:  # another process added it just now
                if "duplicate column" not in str(e):
                    raise
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @property
    def logs_dir(self) -> Path:
        """Where attempt logs live: logs/RUN/TASK/INDEX/ATTEMPT.{out,err}."""
        return self.directory / "logs"

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def hold(self) -> None:
        """Group every write until `flush()` into one transaction (one commit per round)."""
        if not self._held:
            self.db.execute("BEGIN IMMEDIATE")
            self._held = True

    def flush(self) -> None:
        """Commit what `hold()` grouped."""
        if self._held:
            self._held = False
            self.db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on error; part of the held one if any."""
        if self._held:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self, *, job: str, digest: str, files: Sequence[str], git_commit: str | None
    ) -> int:
        """A new run of `job`, owned by this process."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (job, state, started_at, manifest_digest, manifest_files,"
                " git_commit, pid, host, user) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    job,
                    time.time(),
                    digest,
                    json.dumps(list(files)),
                    git_commit,
                    os.getpid(),
                    socket.gethostname(),
                    _who(),
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_run(self, run_id: int, state: str, reason: str | None = None) -> None:
        """Record how a run ended."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET state = ?, reason = ?, ended_at = ? WHERE id = ?",
                (state, reason, time.time(), run_id),
            )

    def _dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by the selected column names."""
        cur = self.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    _RUN_COLUMNS = (
        "id, job, state, reason, started_at, ended_at, git_commit, pid, host, manifest_digest,"
        " manifest_files, cancel_requested, user"
    )

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Most recent runs first."""
        return self._dicts(
            f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,)
        )

    def run(self, run_id: int | None) -> dict[str, Any] | None:
        """One run (the latest when `run_id` is None)."""
        where = "ORDER BY id DESC LIMIT 1" if run_id is None else "WHERE id = ?"
        found = self._dicts(
            f"SELECT {self._RUN_COLUMNS} FROM runs {where}", () if run_id is None else (run_id,)
        )
        return found[0] if found else None

    def unfinished_runs(self, job: str) -> list[dict[str, Any]]:
        """Runs of `job` still marked running (their runner may have died)."""
        return self._dicts(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE job = ? AND state = 'running'", (job,)
        )

    def cancel_requested(self, run_ids: Iterable[int]) -> bool:
        """Whether `runner cancel` flagged any of these runs."""
        ids = list(run_ids)
        marks = ",".join("?" * len(ids))
        row = self.db.execute(
            f"SELECT 1 FROM runs WHERE cancel_requested = 1 AND id IN ({marks}) LIMIT 1", ids
        ).fetchone()
        return row is not None

    def request_cancel(self, run_id: int) -> None:
        """Flag a run for cancellation (read by its runner)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    # -- plan records -----------------------------------------------------------------------

    def current(self, job: str) -> dict[tuple[str, int], CurrentInstance]:
        """Latest known outcome of every instance of `job`."""
        out = {}
        for task, idx, run_id, state, fp, parts in self.db.execute(
            "SELECT task, idx, run_id, state, fingerprint, parts FROM current WHERE job = ?",
            (job,),
        ):
            out[(task, idx)] = CurrentInstance(run_id, state, fp, json.loads(parts or "{}"))
        return out

    def record_plan(
        self,
        run_id: int,
        tasks: Sequence[tuple[str, str, str | None, int]],
        instances: Sequence[tuple[str, int, str, str | None, str | None, str | None]],
    ) -> None:
        """Tasks (name, state, reason, count) and instances (task, idx, state, reason, fp, desc)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO tasks (run_id, task, state, reason, instances) VALUES (?, ?, ?, ?, ?)",
                [(run_id, *t) for t in tasks],
            )
            db.executemany(
                "INSERT INTO instances (run_id, task, idx, state, reason, fingerprint,"
                " description) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *i) for i in instances],
            )

    # -- the engine's per-instance writes (one transaction each, O(1)) ----------------------

    def attempt_started(
        self,
        run_id: int,
        task: str,
        idx: int,
        attempt: int,
        *,
        executor: str,
        handle: str,
        stdout: str,
        stderr: str,
        started_at: float,
        queued: bool = False,
    ) -> None:
        """An attempt was submitted; its handle is stored before anything else happens.
        `queued`: the executor holds it until a slot frees (then `attempt_began`)."""
        state = "queued" if queued else "running"
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO attempts (run_id, task, idx, attempt, state, executor,"
                " handle, started_at, stdout, stderr)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, task, idx, attempt, state, executor, handle, started_at, stdout, stderr),
            )
            db.execute(
                "UPDATE instances SET state = ?, attempts = ?,"
                " started_at = COALESCE(started_at, ?) WHERE run_id = ? AND task = ? AND idx = ?",
                (state, attempt, started_at, run_id, task, idx),
            )

    def attempt_began(
        self, run_id: int, task: str, idx: int, attempt: int, *, started_at: float
    ) -> None:
        """A queued attempt started running."""
        with self.transaction() as db:
            db.execute(
                "UPDATE attempts SET state = 'running', started_at = ?"
                " WHERE run_id = ? AND task = ? AND idx = ? AND attempt = ?",
                (started_at, run_id, task, idx, attempt),
            )
            db.execute(
                "UPDATE instances SET state = 'running' WHERE run_id = ? AND task = ? AND idx = ?",
                (run_id, task, idx),
            )

    def attempt_finished(
        self,
        run_id: int,
        task: str,
        idx: int,
        attempt: int,
        *,
        state: str,
        exit_code: int | None,
        reason: str | None,
        ended_at: float,
        instance_state: str | None,
        began: float | None = None,
        job: str | None = None,
        fingerprint: str | None = None,
        parts: dict[str, str] | None = None,
    ) -> None:
        """An attempt ended; when `instance_state` is given the instance is final too.
        `began`: a queued attempt started since it was last recorded, at this time."""
        with self.transaction() as db:
            db.execute(
                "UPDATE attempts SET state = ?, exit_code = ?, reason = ?, ended_at = ?,"
                " started_at = COALESCE(?, started_at)"
                " WHERE run_id = ? AND task = ? AND idx = ? AND attempt = ?",
                (state, exit_code, reason, ended_at, began, run_id, task, idx, attempt),
            )
            if instance_state is not None:
                self._instance_final(
                    db,
                    run_id,
                    task,
                    idx,
                    instance_state,
                    reason,
                    exit_code,
                    ended_at,
                    job,
                    fingerprint,
                    parts,
                )
            else:
                db.execute(
                    "UPDATE instances SET state = 'retrying', reason = ?, exit_code = ?"
                    " WHERE run_id = ? AND task = ? AND idx = ?",
                    (reason, exit_code, run_id, task, idx),
                )

    def instances_final(
        self, rows: Sequence[tuple[int, str, int, str, str | None, str, str | None]]
    ) -> None:
        """Many instances ended without running: (run, task, idx, state, reason, job, fp)."""
        now = time.time()
        with self.transaction() as db:
            for run_id, task, idx, state, reason, job, fp in rows:
                self._instance_final(db, run_id, task, idx, state, reason, None, now, job, fp, None)

    @staticmethod
    def _instance_final(
        db: sqlite3.Connection,
        run_id: int,
        task: str,
        idx: int,
        state: str,
        reason: str | None,
        exit_code: int | None,
        ended_at: float,
        job: str | None,
        fingerprint: str | None,
        parts: dict[str, str] | None,
    ) -> None:
        db.execute(
            "UPDATE instances SET state = ?, reason = ?, exit_code = COALESCE(?, exit_code),"
            " ended_at = ? WHERE run_id = ? AND task = ? AND idx = ?",
            (state, reason, exit_code, ended_at, run_id, task, idx),
        )
        if job is not None:
            db.execute(
                "INSERT OR REPLACE INTO current (job, task, idx, run_id, state, fingerprint,"
                " parts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job,
                    task,
                    idx,
                    run_id,
                    state,
                    fingerprint,
                    json.dumps(parts) if parts is not None else None,
                ),
            )

    def task_state(self, run_id: int, task: str, state: str, reason: str | None = None) -> None:
        """A task's overall state in a run."""
        with self.transaction() as db:
            db.execute(
                "UPDATE tasks SET state = ?, reason = COALESCE(?, reason)"
                " WHERE run_id = ? AND task = ?",
                (state, reason, run_id, task),
            )

    # -- reading back -----------------------------------------------------------------------

    def tasks(self, run_id: int) -> list[dict[str, Any]]:
        """Tasks of a run in the order they were planned."""
        return self._dicts(
            "SELECT task, state, reason, instances FROM tasks WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        )

    def instances(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        """Instances of a run (of one task)."""
        sql = (
            "SELECT task, idx, state, reason, exit_code, attempts, started_at, ended_at,"
            " description FROM instances WHERE run_id = ?"
        )
        args: tuple[Any, ...] = (run_id,)
        if task is not None:
            sql += " AND task = ?"
            args += (task,)
        return self._dicts(sql + " ORDER BY rowid", args)

    def instance_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        """What `instances(run_id)` reads, as plain tuples in its column order: a run page
        reads 10,000 of them, and a dict per row doubles the time that takes."""
        return self.db.execute(
            "SELECT task, idx, state, reason, exit_code, attempts, started_at, ended_at,"
            " description FROM instances WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        ).fetchall()

    def instance_states(self, run_id: int) -> list[tuple[str, int, str]]:
        """(task, index, state) of every instance of a run, in plan order: what a page
        following a run polls, read without a dict per row (10,000 rows every 2 s)."""
        return self.db.execute(
            "SELECT task, idx, state FROM instances WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()

    def attempts(self, run_id: int, task: str, idx: int) -> list[dict[str, Any]]:
        """Attempts of one instance, first first."""
        return self._dicts(
            "SELECT attempt, state, exit_code, executor, handle, started_at, ended_at, stdout,"
            " stderr, reason FROM attempts WHERE run_id = ? AND task = ? AND idx = ?"
            " ORDER BY attempt",
            (run_id, task, idx),
        )

    def log_copied(
        self, run_id: int, task: str, idx: int, attempt: int, stream: str, uri: str
    ) -> None:
        """An attempt's stdout or stderr was stored at `uri` (the `logs` of its task)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO log_copies VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, task, idx, attempt, stream, uri),
            )

    def log_copies(self, run_id: int, task: str, idx: int, attempt: int) -> dict[str, str]:
        """stream -> URI of the stored copies of an attempt's logs."""
        rows = self.db.execute(
            "SELECT stream, uri FROM log_copies WHERE run_id = ? AND task = ? AND idx = ?"
            " AND attempt = ?",
            (run_id, task, idx, attempt),
        ).fetchall()
        return dict(rows)

    def running_attempts(self, run_id: int) -> list[dict[str, Any]]:
        """Attempts of a run still marked running (or queued in their executor)."""
        return self._dicts(
            "SELECT task, idx, attempt, executor, handle FROM attempts"
            " WHERE run_id = ? AND state IN ('queued', 'running')",
            (run_id,),
        )

    def progress(self, run_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """run -> (instances done, instances) for each of `run_ids`."""
        found = {rid: (0, 0) for rid in run_ids}
        for start in range(0, len(run_ids), 500):
            part = list(run_ids[start : start + 500])
            marks = ", ".join("?" * len(part))
            for rid, done, total in self.db.execute(
                "SELECT run_id, SUM(state IN ('succeeded', 'skipped')), COUNT(*) FROM instances"
                f" WHERE run_id IN ({marks}) GROUP BY run_id",
                part,
            ):
                found[rid] = (done, total)
        return found

    def busy(self) -> list[dict[str, Any]]:
        """What runs now, summed up: per run, task and executor, the attempts queued or
        running in runs still marked running."""
        return self._dicts(
            "SELECT r.id AS run_id, r.job AS job, a.task AS task, a.executor AS executor,"
            " SUM(a.state = 'running') AS running, SUM(a.state = 'queued') AS queued"
            " FROM attempts a JOIN runs r ON r.id = a.run_id"
            " WHERE r.state = 'running' AND a.state IN ('queued', 'running')"
            " GROUP BY r.id, a.task, a.executor"
        )

    def attempt_note(self, run_id: int, task: str, idx: int, attempt: int, note: str) -> None:
        """What an executor says about an attempt still waiting (why it is queued)."""
        self.db.execute(
            "UPDATE attempts SET reason = ? WHERE run_id = ? AND task = ? AND idx = ?"
            " AND attempt = ?",
            (note, run_id, task, idx, attempt),
        )

    def adoptable(self, run_id: int) -> list[dict[str, Any]]:
        """Attempts of a run still marked running, with what a later run needs to follow
        them instead of starting them again (their instance's fingerprint, their logs)."""
        return self._dicts(
            "SELECT a.task, a.idx, a.attempt, a.executor, a.handle, a.stdout, a.stderr,"
            " a.started_at, a.state, i.fingerprint FROM attempts a JOIN instances i"
            " ON i.run_id = a.run_id AND i.task = a.task AND i.idx = a.idx"
            " WHERE a.run_id = ? AND a.state IN ('queued', 'running')",
            (run_id,),
        )

    def close_interrupted(self, run_id: int, job: str, reason: str) -> None:
        """A run whose runner died: its running attempts are lost, unfinished instances too."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "UPDATE attempts SET state = 'lost', reason = ?, ended_at = ?"
                " WHERE run_id = ? AND state IN ('queued', 'running')",
                (reason, now, run_id),
            )
            rows = db.execute(
                "SELECT task, idx FROM instances WHERE run_id = ?"
                " AND state IN ('pending', 'queued', 'running', 'retrying')",
                (run_id,),
            ).fetchall()
            for task, idx in rows:
                self._instance_final(
                    db, run_id, task, idx, "interrupted", reason, None, now, job, None, None
                )
            db.execute(
                "UPDATE tasks SET state = 'interrupted' WHERE run_id = ?"
                " AND state IN ('pending', 'running')",
                (run_id,),
            )
            db.execute(
                "UPDATE runs SET state = 'interrupted', reason = ?, ended_at = ? WHERE id = ?",
                (reason, now, run_id),
            )
