// The alos JIT runner: the main module of a Deno worker (providers/jit.py, docs/jit.md).
//
// It runs one tool call at a time for the host, over JSON lines: the host writes {"op": "run"}
// and {"op": "result"} lines on stdin; the runner writes {"op": "ready"}, {"op": "syscall"} and
// {"op": "done"} lines on stdout. A tool's only way out is libos.syscall (and the typed
// wrappers made from the syscall table), each one line out and one line in, carrying the pid
// the host named for this call. The host checks every line; this file is not trusted to.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const OUTPUT_MAX = Number(Deno.args[0] ?? 262144); // bytes of console output one call keeps
const g = globalThis as Record<string, unknown>;
// what a tool has no use for and could reach a file through (a module loaded by URL)
// and storage Deno keeps on disk, decided by no permission (each worker has its own DENO_DIR too)
for (const name of ["Worker", "SharedWorker", "localStorage", "sessionStorage", "caches", "indexedDB"]) {
  delete g[name];
}

function send(message: unknown): void {
  const bytes = encoder.encode(JSON.stringify(message) + "\n");
  let done = 0;
  while (done < bytes.length) done += Deno.stdout.writeSync(bytes.subarray(done));
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
let current: { id: number; pid: number; output: string[]; size: number; capped: boolean } | null = null;
let nextSyscall = 1;
const pending = new Map<number, Pending>();

class SyscallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SyscallError";
  }
}

function syscall(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
  if (current === null) return Promise.reject(new SyscallError("no tool call is running"));
  if (typeof name !== "string") return Promise.reject(new SyscallError("a syscall name is a string"));
  const id = nextSyscall++;
  const pid = current.pid;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    send({ op: "syscall", id, pid, name, args });
  });
}

function makeLibos(wrappers: Record<string, string | null>): Record<string, unknown> {
  const libos: Record<string, unknown> = { syscall };
  for (const [name, first] of Object.entries(wrappers)) {
    const [family, op] = name.split(".");
    const group = (libos[family] ??= {}) as Record<string, unknown>;
    group[op] = (a?: unknown, rest: Record<string, unknown> = {}) => {
      if (first === null) return syscall(name, (a ?? {}) as Record<string, unknown>);
      if (a !== null && typeof a === "object" && !Array.isArray(a)) return syscall(name, a as Record<string, unknown>);
      return syscall(name, { ...rest, [first]: a });
    };
  }
  return Object.freeze(libos);
}

function keep(parts: unknown[]): void {
  if (current === null) return;
  const line = parts.map((p) => (typeof p === "string" ? p : safeJson(p))).join(" ");
  current.size += encoder.encode(line).length + 1; // bytes, as the cap is
  if (current.size > OUTPUT_MAX) {
    current.capped = true; // stays set if the tool catches the error
    throw new Error(`console output passed ${OUTPUT_MAX} bytes: the output cap`);
  }
  current.output.push(line);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  (console as unknown as Record<string, unknown>)[level] = (...parts: unknown[]) => keep(parts);
}

let libos: Record<string, unknown> = makeLibos({});

async function runTool(message: Record<string, unknown>): Promise<void> {
  const id = Number(message.id);
  current = { id, pid: Number(message.pid), output: [], size: 0, capped: false };
  try {
    const mod = await import(`./t/${message.module}`);
    if (typeof mod.run !== "function") throw new Error("the tool exports no function run(args, libos)");
    const value = await mod.run(message.args, libos);
    if (current.capped) throw new Error(`console output passed ${OUTPUT_MAX} bytes: the output cap`);
    send({ op: "done", id, ok: value === undefined ? null : value, output: current.output });
  } catch (err) {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const limit = current?.capped ? "output" : undefined;
    send({ op: "done", id, error: text, limit, output: current?.output ?? [] });
  } finally {
    current = null;
    for (const [, p] of pending) p.reject(new SyscallError("the tool call ended"));
    pending.clear();
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
    buffered += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 1);
      const message = JSON.parse(line) as Record<string, unknown>;
      if (message.op === "init") libos = makeLibos(message.wrappers as Record<string, string | null>);
      else if (message.op === "run") void runTool(message);
      else if (message.op === "result") {
        const waiting = pending.get(Number(message.id));
        pending.delete(Number(message.id));
        if (waiting === undefined) continue;
        if ("error" in message) waiting.reject(new SyscallError(String(message.error)));
        else waiting.resolve(message.ok);
      }
    }
  }
}

await main();
