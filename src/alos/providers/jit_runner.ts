// The alos JIT runner: the main module of a Deno worker (providers/jit.py, docs/jit.md).
//
// It runs one tool call at a time for the host, over JSON lines: the host writes {"op": "run"}
// and {"op": "result"} lines on stdin; the runner writes {"op": "ready"}, {"op": "syscall"} and
// {"op": "done"} lines on stdout. A tool's only way out is libos.syscall (and the typed
// wrappers made from the syscall table), each one line out and one line in, carrying the pid
// the host named for this call and the call's nonce, which no tool can read. The host checks
// every line; this file is not trusted to.
//
// A tool shares this realm: it could replace a global the runner uses after it has run. So
// what the runner needs is taken before any tool runs (stringify, parse, the writer, Promise),
// each call gets its own libos (a libos kept from an earlier call is refused), and the
// pending syscalls live in an object with no prototype.

const stringify = JSON.stringify;
const parse = JSON.parse;
const PromiseOf = Promise;
const encoder = new TextEncoder();
const encode = encoder.encode.bind(encoder);
const decoder = new TextDecoder();
const decode = decoder.decode.bind(decoder);
const stdout = Deno.stdout;
const writeSync = stdout.writeSync.bind(stdout);
const freeze = Object.freeze;
const entries = Object.entries;
const OUTPUT_MAX = Number(Deno.args[0] ?? 262144); // bytes of console output one call keeps
const g = globalThis as Record<string, unknown>;
// what a tool has no use for and could reach a file through (a module loaded by URL)
// and storage Deno keeps on disk, decided by no permission (each worker has its own DENO_DIR too)
for (const name of ["Worker", "SharedWorker", "localStorage", "sessionStorage", "caches", "indexedDB"]) {
  delete g[name];
}

function send(message: unknown): void {
  const bytes = encode(stringify(message) + "\n");
  let done = 0;
  while (done < bytes.length) done += writeSync(bytes.subarray(done));
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type Call = { id: number; nonce: string; pid: number; output: string[]; size: number; capped: boolean };
let current: Call | null = null;
let nextSyscall = 1;
let pending: Record<number, Pending> = Object.create(null);

class SyscallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SyscallError";
  }
}

function syscallFor(call: Call): (name: string, args?: Record<string, unknown>) => Promise<unknown> {
  return (name: string, args: Record<string, unknown> = {}) => {
    if (current !== call) return PromiseOf.reject(new SyscallError("this tool call has ended"));
    if (typeof name !== "string") return PromiseOf.reject(new SyscallError("a syscall name is a string"));
    const id = nextSyscall++;
    return new PromiseOf((resolve, reject) => {
      pending[id] = { resolve, reject };
      send({ op: "syscall", id, pid: call.pid, call: call.nonce, name, args });
    });
  };
}

let wrappers: Record<string, string | null> = {};

function makeLibos(call: Call): Record<string, unknown> {
  const syscall = syscallFor(call);
  const libos: Record<string, unknown> = { syscall };
  for (const [name, first] of entries(wrappers)) {
    const [family, op] = name.split(".");
    const group = (libos[family] ??= {}) as Record<string, unknown>;
    group[op] = (a?: unknown, rest: Record<string, unknown> = {}) => {
      if (first === null) return syscall(name, (a ?? {}) as Record<string, unknown>);
      if (a !== null && typeof a === "object" && !Array.isArray(a)) return syscall(name, a as Record<string, unknown>);
      return syscall(name, { ...rest, [first]: a });
    };
  }
  for (const group of Object.values(libos)) if (typeof group === "object") freeze(group);
  return freeze(libos);
}

function keep(parts: unknown[]): void {
  if (current === null) return;
  const line = parts.map((p) => (typeof p === "string" ? p : safeJson(p))).join(" ");
  current.size += encode(line).length + 1; // bytes, as the cap is
  if (current.size > OUTPUT_MAX) {
    current.capped = true; // stays set if the tool catches the error
    throw new Error(`console output passed ${OUTPUT_MAX} bytes: the output cap`);
  }
  current.output.push(line);
}

function safeJson(value: unknown): string {
  try {
    return stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  (console as unknown as Record<string, unknown>)[level] = (...parts: unknown[]) => keep(parts);
}

async function runTool(message: Record<string, unknown>): Promise<void> {
  const call: Call = {
    id: Number(message.id),
    nonce: String(message.nonce),
    pid: Number(message.pid),
    output: [],
    size: 0,
    capped: false,
  };
  current = call;
  const done = { op: "done", id: call.id, call: call.nonce };
  try {
    const mod = await import(`./t/${message.module}`);
    if (typeof mod.run !== "function") throw new Error("the tool exports no function run(args, libos)");
    const value = await mod.run(message.args, makeLibos(call));
    if (call.capped) throw new Error(`console output passed ${OUTPUT_MAX} bytes: the output cap`);
    send({ ...done, ok: value === undefined ? null : value, output: call.output });
  } catch (err) {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    send({ ...done, error: text, limit: call.capped ? "output" : undefined, output: call.output });
  } finally {
    current = null;
    const left = pending;
    pending = Object.create(null);
    for (const id in left) left[id].reject(new SyscallError("the tool call ended"));
  }
}

async function main(): Promise<void> {
  let buffered = "";
  try {
    Deno.env.get("ALOS_BROKER_PROBE"); // with alos as Deno's permission broker, the host sees this
  } catch {
    // denied, as it must be
  }
  send({ op: "ready" });
  for await (const chunk of Deno.stdin.readable) {
    buffered += decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 1);
      const message = parse(line) as Record<string, unknown>;
      if (message.op === "init") wrappers = message.wrappers as Record<string, string | null>;
      else if (message.op === "run") void runTool(message);
      else if (message.op === "result") {
        const id = Number(message.id);
        const waiting = pending[id];
        delete pending[id];
        if (waiting === undefined) continue;
        if ("error" in message) waiting.reject(new SyscallError(String(message.error)));
        else waiting.resolve(message.ok);
      }
    }
  }
}

await main();
