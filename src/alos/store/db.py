"""Open, check, migrate and lock the SQLite store; hand out transactions.

The only module that opens the database file. It refuses a file that is not an alos store,
is corrupt, was written by a newer alos, or has a second name (a hard link: SQLite names its
write-ahead log after the path, so two names of one file would corrupt it), and never
overwrites one. The host lock is named by the file's device and inode, not by the path that
named it. A store deleted or replaced under a running program is noticed at the next
transaction or look for others' changes, and stops that program (StoreLost).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from importlib import resources

from alos import limits
from alos.errors import Invalid, StoreLost, Unavailable
from alos.store.bell import Bell

# version -> the statements that move a store from version-1 to version
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (  # the process model: priorities, fork modes, exec, timed waits, reaping, term; queues; budgets
        "ALTER TABLE processes ADD COLUMN priority INTEGER NOT NULL DEFAULT 5",
        "ALTER TABLE processes ADD COLUMN mode TEXT NOT NULL DEFAULT 'spawn'",
        "ALTER TABLE processes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE processes ADD COLUMN wake REAL",
        "ALTER TABLE processes ADD COLUMN reaped INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE processes ADD COLUMN term INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE processes ADD COLUMN creator INTEGER",
        "ALTER TABLE processes ADD COLUMN paused_by INTEGER",
        "UPDATE processes SET creator = parent",
        "DROP INDEX IF EXISTS audit_pid",  # every audit insert paid for it; 'alos audit --pid' can scan
        "CREATE INDEX processes_parent ON processes(parent)",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, sender INTEGER NOT NULL,"
        " kind TEXT NOT NULL, corr TEXT, body TEXT NOT NULL, sent REAL NOT NULL, taken REAL)",
        "CREATE INDEX messages_queue ON messages(pid, id) WHERE taken IS NULL",
        "CREATE TABLE budgets (pid INTEGER NOT NULL, name TEXT NOT NULL, lim INTEGER,"
        " spent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (pid, name))",
    ),
    3: (  # AgentImages registered in the store
        "CREATE TABLE images (ref TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER, digest TEXT NOT NULL,"
        " body TEXT NOT NULL, created REAL NOT NULL, pid INTEGER NOT NULL)",
        "CREATE UNIQUE INDEX images_version ON images(name, version) WHERE version IS NOT NULL",
    ),
    4: (  # Object Memory and checkpoints: the tables from schema.sql, each process's own namespace
        "ALTER TABLE processes ADD COLUMN ctxgen INTEGER NOT NULL DEFAULT 0",
        "<schema 4>",
        # every live process gets its own namespace and the rights on it that a new one gets
        "INSERT INTO namespaces (name, owner, created) SELECT 'proc/' || pid, pid, updated FROM processes",
        "INSERT INTO capabilities (pid, pattern, rights, effect, issuer, delegable) SELECT pid, 'obj:proc/' || pid"
        " || '/*', 'delete,read,write', 'allow', 'own', 1 FROM processes WHERE state != 'exited'",
        "INSERT INTO capabilities (pid, pattern, rights, effect, issuer, delegable) SELECT pid, 'ns:proc/' || pid,"
        " 'list,write', 'allow', 'own', 1 FROM processes WHERE state != 'exited'",
    ),
    5: (  # JIT tools; every live process may list and run the tools of its own table
        "DROP INDEX IF EXISTS audit_effects",  # made again by schema 5, naming the tool changes too
        "<schema 5>",
        "INSERT INTO capabilities (pid, pattern, rights, effect, issuer, delegable) SELECT pid, 'tool:proc/' || pid"
        " || '/*', 'execute,list', 'allow', 'own', 1 FROM processes WHERE state != 'exited'",
    ),
    6: ("<schema 6>",),  # an index on the audit log by process: a process's page, a filter by process
}
REQUIRED_TABLES = frozenset(
    {
        "meta",
        "processes",
        "capabilities",
        "human_requests",
        "pending_actions",
        "journal",
        "context",
        "audit",
        "events",
        "messages",
        "budgets",
        "images",
        "namespaces",
        "objects",
        "versions",
        "links",
        "checkpoints",
        "checkpoint_context",
        "tools",
        "tool_specs",
    }
)


class Store:
    """One connection to one store file. Use ``transaction()`` for every write."""

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        st = os.stat(path)
        self.identity = (st.st_dev, st.st_ino)  # the file opened: a file put at this path later is another
        self._seen_version = self._data_version()
        self._lock_fd: int | None = None  # the host lock's file, while this program is the host
        # wakes the other programs on this store after each commit (store/bell.py)
        self.bell = Bell(
            os.path.join(os.path.dirname(path), f".alos-bell-{st.st_dev:x}-{st.st_ino:x}"), path, self.identity
        )

    def check(self) -> None:
        """Raise StoreLost when the file at this store's path is gone or is not the file opened."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreLost(
                f"the store {self.path} was deleted while alos had it open; stopping, since nothing more "
                "can be kept. Its processes, requests and audit log went with it"
            ) from None
        if (st.st_dev, st.st_ino) != self.identity:
            raise StoreLost(
                f"the store {self.path} was replaced by another file while alos had it open; stopping "
                "without writing to either"
            )

    @property
    def directory(self) -> str:
        """Return the real path of the directory that holds the store and its side files."""
        return os.path.dirname(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Yield the connection inside BEGIN IMMEDIATE; commit on success, roll back on error."""
        self.check()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")  # our own commits never change data_version for this connection
        self.bell.ring()

    def changed_elsewhere(self) -> bool:
        """Return whether another connection committed since we last looked (and note it).
        Raises StoreLost when the store file is gone or replaced."""
        self.check()
        now = self._data_version()
        if now == self._seen_version:
            return False
        self._seen_version = now
        return True

    def _data_version(self) -> int:
        row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def lock_host(self) -> None:
        """Become the one host that runs this store's processes: an exclusive flock on a lock file
        named by the store file's device and inode, beside it, so that every name that reaches the
        file through its directory shares one lock (a second hard link is refused at open).

        Raises Unavailable naming the holder when another host runs them.
        """
        # never a descriptor of the store file itself: closing one drops SQLite's POSIX locks,
        # those of every other connection of this program to that file included
        dev, ino = self.identity
        fd = os.open(
            os.path.join(self.directory, f".alos-host-{dev:x}-{ino:x}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Unavailable(
                f"another host (os pid {holder}) is running the processes of {self.path}; "
                "answer requests with 'alos approve/deny', or stop that host first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def host_running(self) -> bool:
        """Return whether some program (this one or another) is the host of this store now."""
        if self._lock_fd is not None:
            return True
        dev, ino = self.identity
        try:
            fd = os.open(os.path.join(self.directory, f".alos-host-{dev:x}-{ino:x}"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # no host has ever run it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # drops the shared lock too
        return False

    @property
    def hosting(self) -> bool:
        """Return whether this connection holds the host lock (runs the processes)."""
        return self._lock_fd is not None

    def close(self) -> None:
        """Close the connection and release the host lock if held."""
        self.conn.close()
        self.bell.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def open_store(path: str, create: bool = True) -> Store:
    """Return the store at ``path``, creating it (and its directory) when ``create`` and the file is
    new or empty: a file of any other content is never written to.

    Raises Invalid when the file is not an alos store, is corrupt, or has a newer schema;
    NotFound-like Invalid when it is missing and ``create`` is false; Unavailable when another
    program keeps it locked (SQLite does not always wait, e.g. while a host creates it).
    """
    for _ in range(limits.STORE_OPEN_TRIES - 1):
        try:
            return _open(path, create)
        except _Busy:
            time.sleep(0.05)
    try:
        return _open(path, create)
    except _Busy as err:
        raise Unavailable(
            f"the store {os.path.realpath(path)} is locked by another program ({err}); try again"
        ) from None


class _Busy(Exception):
    """SQLite answered 'locked' or 'busy' without waiting: try again."""


def _open(path: str, create: bool) -> Store:
    path = os.path.realpath(path)
    exists = os.path.exists(path)
    if not exists and not create:
        raise Invalid(f"no alos store at {path}; start one with 'alos run' or pass --store PATH")
    if exists and os.path.isdir(path):
        raise Invalid(f"store path {path} is a directory; pass the store file, e.g. .alos/store.db")
    links = os.stat(path).st_nlink if exists else 1
    if links > 1:
        raise Invalid(
            f"the store {path} has {links} names (hard links); SQLite keeps its log beside each name, so "
            "two names of one store would corrupt it. Remove the other link(s) (find -samefile) and try again"
        )
    size = os.path.getsize(path) if exists else 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {limits.SQLITE_BUSY_TIMEOUT_MS}")
        version = _version(conn, path)  # reads only: a file that is not ours stays byte-identical
        if version is None and (size > 0 or not create):  # only an empty file becomes a store
            version = _created_elsewhere(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous = {limits.SQLITE_SYNCHRONOUS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if version is None and not _create(conn):  # another program created it a moment ago
            version = _version(conn, path)
        if version is not None:
            _migrate(conn, version)
        if str(mode).lower() != "wal":
            raise Invalid(f"{path}: the store needs WAL mode, SQLite gave {mode!r}")
    except sqlite3.OperationalError as err:
        conn.close()
        if "locked" in str(err) or "busy" in str(err):
            raise _Busy(str(err)) from None
        raise Invalid(
            f"{path} is not a usable alos store ({err}); it was left untouched. Move it aside or pass another --store"
        ) from None
    except sqlite3.DatabaseError as err:
        conn.close()
        raise Invalid(
            f"{path} is not a usable alos store ({err}); it was left untouched. Move it aside or pass another --store"
        ) from None
    except BaseException:
        conn.close()
        raise
    return Store(path, conn)


def _created_elsewhere(conn: sqlite3.Connection, path: str) -> int:
    """Return the version of an empty store that a host is creating this moment (a reader came
    in between the file and its schema); raise Invalid, writing nothing, when none appears."""
    deadline = time.monotonic() + limits.STORE_CREATING_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.01)
        version = _version(conn, path)
        if version is not None:
            return version
    raise Invalid(f"{path} is not an alos store (it holds no tables); it was left untouched. Pass another --store")


def _version(conn: sqlite3.Connection, path: str) -> int | None:
    """Return the schema version of the store, None for an empty file; raise Invalid otherwise."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise Invalid(f"{path} is an SQLite file but not an alos store (no meta table); it was left untouched")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    text = str(row[0]) if row is not None else ""
    if not text.isdigit() or int(text) < 1:
        raise Invalid(f"{path} has no valid schema version ({text!r}); it is damaged and was left untouched")
    version = int(text)
    if version > limits.SCHEMA_VERSION:
        raise Invalid(
            f"{path} has schema version {version}, newer than this alos understands "
            f"({limits.SCHEMA_VERSION}); upgrade alos. The store was left untouched"
        )
    missing = REQUIRED_TABLES - tables
    if version == limits.SCHEMA_VERSION and missing:
        raise Invalid(f"{path} lacks the table(s) {', '.join(sorted(missing))}; it is damaged and was left untouched")
    ok = conn.execute("PRAGMA quick_check").fetchone()[0]
    if ok != "ok":
        raise Invalid(f"{path} failed SQLite's integrity check ({ok}); it was left untouched")
    return version


def _create(conn: sqlite3.Connection) -> bool:
    """Create the schema in an empty store; return False (touching nothing) when another
    connection created it while this one waited for the write lock."""
    schema = resources.files("alos.store").joinpath("schema.sql").read_text()
    conn.execute("BEGIN IMMEDIATE")
    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        conn.execute("ROLLBACK")
        return False
    try:
        for statement in _statements(schema):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('audit_head', ?)",
            (str(limits.SCHEMA_VERSION), "0:"),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


def _statements(text: str) -> Iterator[str]:
    """Yield the SQL statements of ``text`` one by one."""
    statement = ""
    for line in text.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _expanded(statements: tuple[str, ...]) -> Iterator[str]:
    """Yield ``statements`` with each ``<schema N>`` replaced by the statements of schema.sql between
    its lines ``-- schema N begins`` and ``-- schema N ends`` (what a version added is written once)."""
    schema = resources.files("alos.store").joinpath("schema.sql").read_text()
    for statement in statements:
        if statement.startswith("<schema "):
            version = statement[8:-1]
            begin = schema.index(f"-- schema {version} begins")
            yield from _statements(schema[begin : schema.index(f"-- schema {version} ends")])
        else:
            yield statement


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Apply forward migrations ``version+1 .. SCHEMA_VERSION``, each in its own transaction."""
    for target in range(version + 1, limits.SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _expanded(MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(target),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
