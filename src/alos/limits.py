"""Every tunable of alos, one line each with its unit and the reason for its value.

Pure data. Change a limit here, never inline a number elsewhere.
"""

from __future__ import annotations

SCHEMA_VERSION = 6  # store schema this code writes; older stores migrate forward, newer are refused
SQLITE_BUSY_TIMEOUT_MS = 5_000  # ms another writer may hold the store before we report it busy
# NORMAL in WAL mode: a commit survives kill -9 of the host (it is in the WAL, handed to the
# OS); only a power loss can drop the last commits. FULL costs ~150 us per commit here.
SQLITE_SYNCHRONOUS = "NORMAL"
STORE_OPEN_TRIES = 5  # opens of a store SQLite reports locked without waiting, 50 ms apart
STORE_CREATING_SECONDS = 1.0  # s a reader waits for the schema of an empty store a host may be creating

READ_MAX_BYTES = 1 << 20  # bytes fs.read returns in one call; larger files are read in pieces
FILE_MAX_OFFSET = (1 << 62) - 1  # bytes: the largest offset the host's off_t takes without overflow
WRITE_MAX_BYTES = 16 << 20  # bytes one fs.write may carry; bigger payloads are refused
LIST_MAX_ENTRIES = 1_000  # directory entries fs.list returns; the result says when it cut
QUESTION_MAX_CHARS = 4_000  # characters of one human.ask question or human.tell message

PREVIEW_CHARS = 240  # characters of content shown in an approval request
DIFF_SHOWN_LINES = 40  # diff lines an approval panel shows before it says how many more there are
DIFF_MAX_BYTES = 64 << 10  # bytes: no diff is computed for files bigger than this (the request says so)
PEEK_MAX_BYTES = 64 << 20  # bytes hashed to show an approval; bigger files are named by size and mtime

MODEL_TURN_MAX_CALLS = 64  # tool calls one model turn may return; more is a model error
SCRIPT_MAX_BYTES = 16 << 20  # bytes of a scripted-model file
JSON_MAX_DEPTH = 64  # nesting levels of JSON from a model or a script: deeper is refused, never recursed into

AUDIT_DEFER_MAX = 256  # audit records of no-change calls held for the next transaction before a flush
POLL_SECONDS = 0.2  # seconds between looks at the store for answers made in another terminal

PRIORITY_DEFAULT = 5  # share of quanta of a process nobody gave a priority; priorities run 1..9
PRIORITY_MAX = 9  # the highest priority; a child never gets more than its parent has
SCHED_CONCURRENCY = 8  # quanta in flight at once: model calls overlap; beyond it priorities decide who runs
STRIDE = 1 << 20  # scheduler pass units per quantum at priority 1 (stride scheduling: no starvation)
TERM_GRACE_QUANTA = 2  # quanta a process gets after a term signal to exit by itself before it is killed
MESSAGE_MAX_BYTES = 64 << 10  # bytes of one msg.send body
MESSAGES_SHOWN = 20  # interrupts and human messages put into the context at most per quantum
WAIT_MAX_SECONDS = 30 * 86_400.0  # seconds: the longest clock.sleep or wait timeout (30 days)
CONTEXTS_CACHED = 512  # process contexts kept in memory; more are read back from the store
ANCESTRY_MAX = 64  # generations of processes below a root: a deeper spawn is refused
PROC_NAME_MAX_CHARS = 64  # characters of a process's name
IMAGE_DESCRIPTION_MAX_CHARS = 500  # characters of an image's description
BUDGET_MAX = 1 << 62  # the largest budget limit: the store keeps 64-bit integers

# models and their clients (docs/models.md)
MODEL_MAX_TOKENS = 1_024  # tokens a reply may have when the image names no max_tokens; reserved before each call
MODEL_TIMEOUT_SECONDS = 120.0  # s one HTTP model request may take, streaming included, before it is retried
MODEL_CONNECT_SECONDS = 10.0  # s to connect to a model server
MODEL_RETRIES = 4  # retries of a transient fault (429, 5xx, dropped connection, timeout) before a person is asked
MODEL_BACKOFF_SECONDS = 0.5  # s before the first retry; doubled each time, with full jitter
MODEL_BACKOFF_MAX_SECONDS = 30.0  # s: the longest wait between retries, Retry-After included
MODEL_REPLY_MAX_BYTES = 8 << 20  # bytes of one model reply (a stream included); more is a model error
MODEL_REPAIRS = 3  # malformed tool calls in a row answered with a repair turn before a person is asked
CONTEXT_TOKENS = 32_000  # the context's token budget when the image names none; past it old tool results are elided
TOOL_RESULT_MAX_CHARS = 16_000  # characters of one tool result the model reads; the rest is cut, its size stated
CHARS_PER_TOKEN = 4  # the estimate of tokens in text sent to a model, where the provider has not counted
IMAGE_MAX_BYTES = 1 << 20  # bytes of an image file (image.yaml and prompt.md each)

# shell.run (docs/shell.md)
SHELL_WALL_SECONDS = 120.0  # s a command may run when the call names no timeout; the whole group is killed after
SHELL_WALL_MAX_SECONDS = 3_600.0  # s: the longest timeout a call may name
SHELL_CPU_SECONDS = 600  # s of CPU time a command may use (RLIMIT_CPU: SIGXCPU, then SIGKILL a second later)
SHELL_MEMORY_BYTES = 4 << 30  # bytes of data segment (RLIMIT_DATA; RLIMIT_AS would break runtimes such as V8)
SHELL_FILE_BYTES = 1 << 30  # bytes: the largest file a command may write (RLIMIT_FSIZE: SIGXFSZ)
SHELL_PROCESSES = 4_096  # processes the host's user may have while it runs (RLIMIT_NPROC; root is exempt)
# bytes of stdout and of stderr kept: its first SHELL_HEAD_BYTES and its last; the rest is counted.
# Both streams, escaped as JSON, fit the context's cut of one tool result (TOOL_RESULT_MAX_CHARS)
SHELL_OUTPUT_BYTES = 4 << 10
SHELL_HEAD_BYTES = 1 << 10
SHELL_FLOOD_FACTOR = 4_096  # output beyond this many times what is kept stops the command ('output')
SHELL_FLOOD_MIN_BYTES = 16 << 20  # bytes: a command may always write at least this much before it is stopped
SHELL_KILL_ROUNDS = 64  # killpg rounds until a group is empty (a fork bomb forks while it is killed)
SHELL_KILL_GRACE_SECONDS = 1.0  # s to read what a killed command left in its pipes
SHELL_ARGV_MAX = 4_096  # words in one argv
SHELL_ARG_MAX_BYTES = 128 << 10  # bytes of one argument (Linux's MAX_ARG_STRLEN)
SHELL_ARGV_MAX_BYTES = 1 << 20  # bytes of a whole argv
GIT_CONFIG_MAX_BYTES = 1 << 20  # bytes of a repository's git config read for a decision; a bigger one is a form
SHELL_WRAPS_MAX = 4  # wrappers inside wrappers (env timeout nice ...) a call may nest

# net.fetch (docs/network.md)
NET_REDIRECTS_MAX = 5  # redirects a net_fetch tool call follows, each decided by dispatch() on its own
NET_URL_MAX_CHARS = 8_192  # characters of a URL, as given and as sent
NET_HEADERS_MAX = 32  # request headers one call may set
NET_HEADER_VALUE_MAX_CHARS = 8_192  # characters of one request header value (a long bearer token fits)
NET_HEADERS_MAX_BYTES = 16 << 10  # bytes of all request headers together: what servers commonly take
NET_BODY_MAX_BYTES = 1 << 20  # bytes of a request body (UTF-8 text)
NET_BODY_DEFAULT_BYTES = 64 << 10  # response bytes kept for the context by default (the model reads ~16,000 chars)
NET_BODY_CONTEXT_MAX_BYTES = 256 << 10  # the most response bytes a call may take into the context
NET_TIMEOUT_SECONDS = 30.0  # s a request may take when the call names none
NET_TIMEOUT_MAX_SECONDS = 120.0  # s: the longest timeout a call may name
NET_HEADER_SHOWN_CHARS = 512  # characters of a response header value in the result
NET_LOOKUP_SECONDS = 5.0  # s a name lookup may take (it holds the event loop)
NET_POOLS_KEPT = 8  # idle connection pools kept, one per (scheme, host, address, port)
NET_COUNT_MAX_BYTES = 1 << 20  # bytes past max_bytes read only to count a body's whole size

# Object Memory and checkpoints (docs/objects.md)
OBJ_NAME_MAX_CHARS = 200  # characters of an object name (segments of letters, digits, '.', '_', '-' joined by '/')
NS_NAME_MAX_CHARS = 64  # characters of a namespace made by ns.create (proc/<pid> are the processes' own)
OBJ_TYPE_MAX_CHARS = 64  # characters of an object type name
OBJ_MAX_BYTES = 16 << 20  # bytes of one object version's payload, as fs.write's
OBJ_INLINE_MAX_BYTES = 4 << 10  # bytes: a payload up to this lives in its version's row, a larger one in the blob dir
OBJ_LIST_MAX = 1_000  # names obj.list returns in one call; the result says where to go on
OBJ_LOG_MAX = 200  # versions obj.log returns in one call
OBJ_LINKS_MAX = 64  # links from one object version
OBJ_SCHEMA_MAX_BYTES = 64 << 10  # bytes of the JSON Schema an image declares for one object type
OBJ_TYPES_MAX = 64  # object types one image may declare
OBJ_SEED_MAX = 10_000  # seed objects of one image (ckpt.commit refuses a process with more)
BLOB_GC_GRACE_SECONDS = 3_600.0  # s: an unreferenced blob younger than this is kept (its row may not be committed yet)
CKPT_LABEL_MAX_CHARS = 200  # characters of a checkpoint's label
CKPT_LIST_MAX = 1_000  # checkpoints ckpt.list returns
CKPT_EFFECTS_MAX = 200  # outside effects a restore or a diff lists by name; more are counted
CKPT_CHANGES_MAX = 1_000  # changed object names a diff lists; more are counted
CKPT_CONTEXT_CHAIN = 32  # checkpoints that keep only the context's new messages before one keeps it whole
CKPT_EFFECTS_NOTED = 20  # outside effects a restored process's context note names; the result lists more
CONTEXT_OBJECTS_SHARE = 4  # 1/N of the context's token budget may go to the objects an image shows the model

# JIT tools (docs/jit.md)
JIT_SOURCE_MAX_BYTES = 64 << 10  # bytes of one tool's TypeScript source
JIT_SOURCE_MAX_LINES = 2_000  # lines of one tool's source
JIT_NAME_MAX_CHARS = 48  # characters of a tool name (a letter, then letters, digits and '_')
JIT_DESCRIPTION_MAX_CHARS = 1_000  # characters of a tool's description
JIT_SCHEMA_MAX_BYTES = 16 << 10  # bytes of a tool's JSON Schema for its arguments
JIT_SCHEMA_MAX_DEPTH = 16  # nesting levels of that schema (a deeper one would recurse in the checks)
JIT_TOOLS_MAX = 64  # tools one table may hold
JIT_HEAP_MB = 128  # MiB of V8 old space a tool may use (--max-old-space-size): a memory bomb ends there
JIT_DATA_BYTES = 2 << 30  # bytes of data segment of a Deno worker (RLIMIT_DATA; never RLIMIT_AS: V8 reserves)
JIT_CPU_SECONDS = 5  # s of CPU time one tool call may use (RLIMIT_CPU, set afresh before each call)
JIT_WALL_SECONDS = 10.0  # s one tool call may run, not counting the syscalls it waits on
JIT_OUTPUT_MAX_BYTES = 256 << 10  # bytes of one message from a tool (its result, a syscall's arguments, console output)
JIT_SYSCALLS_MAX = 256  # syscalls one tool call may make
JIT_WORKERS_WARM = 2  # Deno workers started ahead of need
JIT_WORKERS_KEPT = 4  # workers kept for the processes that used them last (a worker serves one process)
JIT_START_SECONDS = 15.0  # s a Deno worker may take to start and say it is ready
JIT_CHECK_HEAP_MB = 1024  # MiB of V8 heap deno check may use for one tool (it runs outside bubblewrap)
JIT_CHECK_SECONDS = 60.0  # s deno check and deno info may take for one tool (a cold check is ~1 s)
