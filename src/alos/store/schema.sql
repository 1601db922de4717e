-- alos store, schema version 4. Applied in one transaction to an empty store.
-- The store is the source of truth: every state change commits with its audit record.

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE processes (
    pid     INTEGER PRIMARY KEY,
    parent  INTEGER,
    name    TEXT NOT NULL,
    image   TEXT NOT NULL,
    model   TEXT NOT NULL,
    state   TEXT NOT NULL,
    wait    TEXT,
    exit    TEXT,
    cwd     TEXT NOT NULL,
    goal    TEXT NOT NULL,
    result  TEXT,
    turns   INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    priority INTEGER NOT NULL DEFAULT 5,    -- share of quanta, 1..9; a child's never exceeds its parent's
    mode     TEXT NOT NULL DEFAULT 'spawn', -- spawn | worker | speculative | copy (how it was made)
    epoch    INTEGER NOT NULL DEFAULT 0,    -- how many times it exec'd
    wake     REAL,                          -- when a timed wait ends (clock.sleep, wait/recv timeouts)
    reaped   INTEGER NOT NULL DEFAULT 0,    -- its exit was collected by proc.wait (or proc.merge)
    term     INTEGER NOT NULL DEFAULT 0,    -- quanta left after a term signal before it is killed
    creator  INTEGER,                       -- who made it (never changes: budgets follow it, not adoption)
    paused_by INTEGER,                      -- who paused it: only that process or the host resumes it
    ctxgen   INTEGER NOT NULL DEFAULT 0     -- bumped whenever its context is rewritten (exec, restore), not appended to
);
CREATE INDEX processes_parent ON processes(parent);

-- Durable message queues: one per process, taken selectively by kind and correlation id.
CREATE TABLE messages (
    id     INTEGER PRIMARY KEY,
    pid    INTEGER NOT NULL,
    sender INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    corr   TEXT,
    body   TEXT NOT NULL,
    sent   REAL NOT NULL,
    taken  REAL
);
CREATE INDEX messages_queue ON messages(pid, id) WHERE taken IS NULL;

-- Budgets: a limit (NULL: none of its own) and what the process and its descendants spent.
CREATE TABLE budgets (
    pid   INTEGER NOT NULL,
    name  TEXT NOT NULL,
    lim   INTEGER,
    spent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pid, name)
);

CREATE TABLE capabilities (
    id        INTEGER PRIMARY KEY,
    pid       INTEGER NOT NULL,
    pattern   TEXT NOT NULL,
    rights    TEXT NOT NULL,
    effect    TEXT NOT NULL CHECK (effect IN ('allow', 'ask', 'deny')),
    issuer    TEXT NOT NULL,
    expires   REAL,
    uses      INTEGER,
    delegable INTEGER NOT NULL DEFAULT 0,
    parent    INTEGER REFERENCES capabilities(id),
    revoked   INTEGER NOT NULL DEFAULT 0,
    digest    TEXT,
    request   INTEGER
);
CREATE INDEX capabilities_pid ON capabilities(pid);
-- spent one-shot grants pile up; the decision only ever loads the live ones
CREATE INDEX capabilities_live ON capabilities(pid) WHERE revoked = 0 AND (uses IS NULL OR uses > 0);
CREATE INDEX capabilities_parent ON capabilities(parent);

CREATE TABLE human_requests (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    action      INTEGER NOT NULL,
    call        INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    syscall     TEXT NOT NULL,
    resource    TEXT NOT NULL,
    "right"     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    state       TEXT NOT NULL,
    answer      TEXT,
    always      INTEGER NOT NULL DEFAULT 0,
    answered_by TEXT,
    created     REAL NOT NULL,
    answered    REAL
);
CREATE INDEX human_requests_state ON human_requests(state);
CREATE INDEX human_requests_call ON human_requests(pid, action, call, step);

-- The model turn being carried out: its tool calls and how far dispatch got.
CREATE TABLE pending_actions (
    pid    INTEGER PRIMARY KEY,
    action INTEGER NOT NULL,
    calls  TEXT NOT NULL,
    next   INTEGER NOT NULL
);

-- Outside effects inside a pending action: intent before the effect, outcome after.
CREATE TABLE journal (
    pid     INTEGER NOT NULL,
    action  INTEGER NOT NULL,
    call    INTEGER NOT NULL,
    step    INTEGER NOT NULL,
    syscall TEXT NOT NULL,
    digest  TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN ('intent', 'done')),
    result  TEXT,
    request INTEGER,  -- the approved recovery request this attempt carries out, if any
    PRIMARY KEY (pid, action, call, step)
);

CREATE TABLE context (
    pid  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    role TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (pid, seq)
);

CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY,
    time     REAL NOT NULL,
    pid      INTEGER NOT NULL,
    syscall  TEXT NOT NULL,
    resource TEXT NOT NULL,
    "right"  TEXT NOT NULL,
    decision TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL,
    prev     TEXT NOT NULL,
    digest   TEXT NOT NULL
);

-- The head names the newest record, so removing records at the end shows in verification.
CREATE TRIGGER audit_head AFTER INSERT ON audit BEGIN
    UPDATE meta SET value = NEW.seq || ':' || NEW.digest WHERE key = 'audit_head';
END;

CREATE TABLE events (
    seq    INTEGER PRIMARY KEY,
    time   REAL NOT NULL,
    pid    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- AgentImages stored by image.register (NAME@VERSION, listed) or for a run from a file
-- (NAME@sha256:HEX, unlisted). A process names the ref it runs, so it keeps that version.
CREATE TABLE images (
    ref     TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    version INTEGER,                        -- NULL: stored for a run from a file, not registered
    digest  TEXT NOT NULL,                  -- sha256 of the canonical JSON body
    body    TEXT NOT NULL,                  -- the image as JSON
    created REAL NOT NULL,
    pid     INTEGER NOT NULL                -- who stored it (0: the host)
);
CREATE UNIQUE INDEX images_version ON images(name, version) WHERE version IS NOT NULL;

-- schema 4 begins: Object Memory and checkpoints (db.MIGRATIONS creates what is between these lines)
-- Object Memory (docs/objects.md). A namespace holds names; each name is an object whose
-- versions are immutable rows, addressed by the digest of their payload.
CREATE TABLE namespaces (
    name    TEXT PRIMARY KEY,               -- proc/<pid>, or a name made by ns.create
    owner   INTEGER NOT NULL,               -- the process whose checkpoints cover it (0: the host)
    created REAL NOT NULL
);
CREATE TABLE objects (
    id   INTEGER PRIMARY KEY,
    ns   TEXT NOT NULL,
    name TEXT NOT NULL,
    head INTEGER NOT NULL,                  -- seq of its newest version (a tombstone once deleted)
    base INTEGER,                           -- the version (seq) a fork copied it from: what proc.merge compares with
    UNIQUE (ns, name)
);
CREATE TABLE versions (
    seq     INTEGER PRIMARY KEY,            -- store-wide order, never reused: a checkpoint is a mark in it
    object  INTEGER NOT NULL,
    version INTEGER NOT NULL,               -- 1, 2, ... of its object
    ns      TEXT NOT NULL,
    type    TEXT NOT NULL,
    digest  TEXT,                           -- sha256 of the payload; NULL: the object was deleted here
    size    INTEGER NOT NULL,
    body    BLOB,                           -- the payload when small; NULL: in the blob directory, by digest
    pid     INTEGER NOT NULL,               -- who wrote it (0: the host)
    created REAL NOT NULL,
    UNIQUE (object, version)
);
CREATE INDEX versions_ns ON versions(ns, seq);
CREATE INDEX versions_blob ON versions(digest) WHERE body IS NULL AND digest IS NOT NULL;
-- typed edges between versions: derived_from, cites, result_of
CREATE TABLE links (
    src  INTEGER NOT NULL,
    kind TEXT NOT NULL,
    dst  INTEGER NOT NULL,
    PRIMARY KEY (src, kind, dst)
);
CREATE INDEX links_dst ON links(dst);
-- A checkpoint is a manifest: the object versions are those of its namespaces up to mark, the
-- context rows are those new since the previous checkpoint of the process (or all of them).
CREATE TABLE checkpoints (
    id      INTEGER PRIMARY KEY,
    pid     INTEGER NOT NULL,
    label   TEXT,
    prev    INTEGER,                        -- the process's previous checkpoint
    parent  INTEGER,                        -- the checkpoint this one was taken with (a child's, children=true)
    mark    INTEGER NOT NULL,               -- the newest version seq when taken
    audit   INTEGER NOT NULL,               -- the newest audit seq when taken: later outside effects are listed
    ctxgen  INTEGER NOT NULL,
    ctxlen  INTEGER NOT NULL,               -- context messages it holds (with those of the checkpoints before it)
    ctxfrom INTEGER NOT NULL,               -- the first context seq kept in this checkpoint's own rows
    body    TEXT NOT NULL,                  -- JSON: process record, capabilities, pending action, queue cursor
    created REAL NOT NULL,
    taker   INTEGER NOT NULL                -- who took it (0: the host)
);
CREATE INDEX checkpoints_pid ON checkpoints(pid, id);
CREATE TABLE checkpoint_context (
    ckpt INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (ckpt, seq)
);
-- schema 4 ends

-- schema 5 begins: JIT tools (docs/jit.md)
-- A registered tool: the TypeScript a process proposed and validated, in a table (proc/<pid>,
-- the process's own, or a shared table's name). Its spec (source, description, schema) is kept
-- by digest and never changed or removed, so a checkpoint names a table's tools by digest and
-- a restore brings back a tool unregistered since.
CREATE TABLE tool_specs (
    digest TEXT PRIMARY KEY,                -- sha256 of the spec's canonical JSON
    spec   TEXT NOT NULL                    -- JSON: source, description, parameters (the JSON Schema of its arguments)
);
CREATE TABLE tools (
    tbl     TEXT NOT NULL,
    name    TEXT NOT NULL,
    digest  TEXT NOT NULL,                  -- sha256 of the source
    spec    TEXT NOT NULL,                  -- tool_specs.digest
    pid     INTEGER NOT NULL,               -- who registered it
    created REAL NOT NULL,
    PRIMARY KEY (tbl, name)
);
-- the effects a restore lists: each process's calls after a checkpoint that reached outside its
-- own state (kernel/ckpt.py OUTSIDE and OBJECT_CHANGES; a test keeps the list in step)
CREATE INDEX audit_effects ON audit(pid, seq) WHERE outcome = 'ok' AND syscall IN (
    'fs.write', 'fs.mkdir', 'fs.delete', 'shell.run', 'net.fetch', 'human.tell', 'human.ask',
    'msg.send', 'proc.signal', 'proc.spawn', 'proc.fork', 'image.register', 'obj.to_file',
    'obj.share', 'ckpt.fork', 'ckpt.commit', 'ckpt.restore', 'ckpt.create', 'ns.create',
    'obj.create', 'obj.write', 'obj.append', 'obj.delete', 'obj.link', 'obj.from_file',
    'tool.register', 'tool.unregister'
);
-- schema 5 ends

-- schema 6 begins: the console reads one process's audit records a page at a time (docs/console.md)
CREATE INDEX audit_pid ON audit(pid, seq);
-- schema 6 ends
