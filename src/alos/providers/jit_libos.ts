// The libos a JIT tool is given: made from alos's syscall table by 'python -m alos.tooljit'.
// Every call is one syscall of the process that runs the tool, decided and audited as any other.
declare global {
  interface Libos {
    /** Make syscall name (e.g. "fs.read") with args; resolves to its result, rejects with a denial. */
    syscall(name: string, args?: Record<string, unknown>): Promise<any>;
    ckpt: {
      /** Make checkpoint ``id`` a new version of image ``name``: its process's image with the checkpoint's objects as the seed objects of every process started from it. ``pid``: whose checkpoint it is (yourself by default). */
      commit(args: { id: number; name: string; description?: null | string; pid?: null | number }): Promise<any>;
      commit(id: number, rest?: { id?: number; name: string; description?: null | string; pid?: null | number }): Promise<any>;
      /** Take a checkpoint of yourself (or of process ``pid``, e.g. a child), with an optional ``label``; ``children``: of its live descendants too. */
      create(args?: { pid?: null | number; label?: null | string; children?: boolean }): Promise<any>;
      /** Say what changed between checkpoint ``id`` and checkpoint ``to`` (or now) of yourself, or of process ``pid``. */
      diff(args: { id: number; to?: null | number; pid?: null | number }): Promise<any>;
      diff(id: number, rest?: { id?: number; to?: null | number; pid?: null | number }): Promise<any>;
      /** Start a new process from checkpoint ``id`` (its objects, context and the rights it had that you still hold), named ``name``, with ``goal`` (the checkpoint's own by default). ``pid``: whose checkpoint it is (yourself by default). */
      fork(args: { id: number; name?: null | string; goal?: null | string; pid?: null | number }): Promise<any>;
      fork(id: number, rest?: { id?: number; name?: null | string; goal?: null | string; pid?: null | number }): Promise<any>;
      /** List your checkpoints (or process ``pid``'s), newest first. */
      list(args?: { pid?: null | number }): Promise<any>;
      /** Roll the process of checkpoint ``id`` back to it: objects, context, queue. Rights issued since are dropped; outside effects since are listed, not undone. ``pid``: whose checkpoint it is (yourself by default). */
      restore(args: { id: number; pid?: null | number }): Promise<any>;
      restore(id: number, rest?: { id?: number; pid?: null | number }): Promise<any>;
    };
    clock: {
      /** Return the current time in seconds since the epoch. */
      now(args?: {  }): Promise<any>;
      /** Wait ``seconds``; an interrupt ends the wait early. */
      sleep(args: { seconds: number }): Promise<any>;
      sleep(seconds: number, rest?: { seconds?: number }): Promise<any>;
    };
    fs: {
      /** Delete a file or an empty directory. */
      delete(args: { path: string }): Promise<any>;
      delete(path: string, rest?: { path?: string }): Promise<any>;
      /** List a directory: name, type (file, dir, link, other) and size of each entry. */
      list(args?: { path?: string }): Promise<any>;
      /** Make a directory (and missing parents unless ``parents`` is false). */
      mkdir(args: { path: string; parents?: boolean }): Promise<any>;
      mkdir(path: string, rest?: { path?: string; parents?: boolean }): Promise<any>;
      /** Read a text file (UTF-8) from ``offset``, at most ``length`` bytes. */
      read(args: { path: string; offset?: number; length?: number }): Promise<any>;
      read(path: string, rest?: { path?: string; offset?: number; length?: number }): Promise<any>;
      /** Create or replace a file with ``content`` (UTF-8 text). Readers see the old or the new file. */
      write(args: { path: string; content: string }): Promise<any>;
      write(path: string, rest?: { path?: string; content: string }): Promise<any>;
    };
    human: {
      /** Ask the human a question and wait for a text answer. */
      ask(args: { question: string }): Promise<any>;
      ask(question: string, rest?: { question?: string }): Promise<any>;
      /** Show the human a message; nothing is waited for. */
      tell(args: { text: string }): Promise<any>;
      tell(text: string, rest?: { text?: string }): Promise<any>;
    };
    image: {
      /** List the built-in images and the newest version of every registered one. */
      list(args?: {  }): Promise<any>;
      /** Register ``image`` (an object with the fields of an image file: name, description, prompt, tools, grants, budget, model, context; docs/images.md) as the next version of its name. Needs write on image:NAME. It grants nothing to anyone. */
      register(args: { image: Record<string, unknown>; listed?: boolean }): Promise<any>;
      register(image: Record<string, unknown>, rest?: { image?: Record<string, unknown>; listed?: boolean }): Promise<any>;
      /** Show image ``name`` (a built-in, a registered name for its newest version, or NAME@VERSION). */
      show(args: { name: string }): Promise<any>;
      show(name: string, rest?: { name?: string }): Promise<any>;
    };
    model: {
      /** Call the process's model with ``messages`` and the ``tools`` it may use. */
      call(args: { messages: Array<unknown>; tools: Array<unknown>; max_tokens?: null | number; temperature?: null | number; constrain?: boolean; stuck?: null | string; objects?: Array<string>; object_tokens?: number }): Promise<any>;
      call(messages: Array<unknown>, rest?: { messages?: Array<unknown>; tools: Array<unknown>; max_tokens?: null | number; temperature?: null | number; constrain?: boolean; stuck?: null | string; objects?: Array<string>; object_tokens?: number }): Promise<any>;
    };
    msg: {
      /** Take the oldest message in your queue (of ``kind`` / ``corr`` if given). ``block``: wait for one (at most ``timeout`` seconds); otherwise return at once with none. */
      recv(args?: { kind?: null | string; corr?: null | string; block?: boolean; timeout?: null | number }): Promise<any>;
      /** Send process ``pid`` a message: ``body`` text, a ``kind`` and an optional correlation id. */
      send(args: { pid: number; body: string; kind?: string; corr?: null | string }): Promise<any>;
      send(pid: number, rest?: { pid?: number; body: string; kind?: string; corr?: null | string }): Promise<any>;
    };
    net: {
      /** Make one HTTP(S) request to ``url``. GET and HEAD need read on net:HOST (or net:HOST/PATH), other methods write; a loopback or private address also needs a grant on the address itself. The result has the status, a few headers and the body as text, cut at ``max_bytes`` (default 64 KiB, at most 256 KiB). With ``save_to`` a 2xx body is written to that file instead (you need write on it; up to 16 MiB). A redirect is followed only to where you may go. */
      fetch(args: { url: string; method?: "DELETE" | "GET" | "HEAD" | "OPTIONS" | "PATCH" | "POST" | "PUT"; headers?: Record<string, unknown>; body?: string; save_to?: null | string; follow_redirects?: boolean; max_bytes?: null | number; timeout?: number }): Promise<any>;
      fetch(url: string, rest?: { url?: string; method?: "DELETE" | "GET" | "HEAD" | "OPTIONS" | "PATCH" | "POST" | "PUT"; headers?: Record<string, unknown>; body?: string; save_to?: null | string; follow_redirects?: boolean; max_bytes?: null | number; timeout?: number }): Promise<any>;
    };
    ns: {
      /** Make namespace ``name`` (a lowercase name); you get every right on it and may share them. */
      create(args: { name: string }): Promise<any>;
      create(name: string, rest?: { name?: string }): Promise<any>;
    };
    obj: {
      /** Append ``value`` to object ``name`` as a new version: text to text, base64 bytes to bytes, an item to a JSON array. ``expect`` as for obj_write. */
      append(args: { name: string; value: unknown; ns?: null | string; expect?: null | number }): Promise<any>;
      append(name: string, rest?: { name?: string; value: unknown; ns?: null | string; expect?: null | number }): Promise<any>;
      /** Create object ``name`` of ``type`` (text, json, bytes as base64, file_ref, plan, result, context, or a type your image declares) holding ``value``; in your namespace unless ``ns``. */
      create(args: { name: string; type: string; value: unknown; ns?: null | string }): Promise<any>;
      create(name: string, rest?: { name?: string; type: string; value: unknown; ns?: null | string }): Promise<any>;
      /** Delete object ``name`` (its versions stay readable by number). */
      delete(args: { name: string; ns?: null | string }): Promise<any>;
      delete(name: string, rest?: { name?: string; ns?: null | string }): Promise<any>;
      /** Store file ``path`` as object ``name`` (in your namespace unless ``ns``) without reading it into your context: a new version of an existing object, or with ``new`` a new object of ``type`` (text or bytes; text by default). ``expect`` as for obj_write. */
      from_file(args: { path: string; name: string; ns?: null | string; new?: boolean; type?: string; expect?: null | number }): Promise<any>;
      from_file(path: string, rest?: { path?: string; name: string; ns?: null | string; new?: boolean; type?: string; expect?: null | number }): Promise<any>;
      /** Record that the latest version of object ``name`` ``kind`` (derived_from, cites, result_of) the latest version of object ``to`` (in ``to_ns`` if given). */
      link(args: { name: string; kind: "cites" | "derived_from" | "result_of"; to: string; ns?: null | string; to_ns?: null | string }): Promise<any>;
      link(name: string, rest?: { name?: string; kind: "cites" | "derived_from" | "result_of"; to: string; ns?: null | string; to_ns?: null | string }): Promise<any>;
      /** List the objects of your namespace (or ``ns``) whose names start with ``prefix``, in name order after ``after``, at most ``limit``. */
      list(args?: { ns?: null | string; prefix?: string; after?: string; limit?: number }): Promise<any>;
      /** List the versions of object ``name``, newest first. */
      log(args: { name: string; ns?: null | string; limit?: number }): Promise<any>;
      log(name: string, rest?: { name?: string; ns?: null | string; limit?: number }): Promise<any>;
      /** Read object ``name``: its latest version, or ``version``. Bytes come back as base64. */
      read(args: { name: string; ns?: null | string; version?: null | number }): Promise<any>;
      read(name: string, rest?: { name?: string; ns?: null | string; version?: null | number }): Promise<any>;
      /** Pass process ``pid`` ``rights`` on ``pattern`` (obj:NS/NAME, obj:NS/* or ns:NS) that you hold yourself; ``effect`` allow or ask. A bare name is in your namespace. */
      share(args: { pid: number; pattern: string; rights: Array<string>; effect?: "allow" | "ask" }): Promise<any>;
      share(pid: number, rest?: { pid?: number; pattern: string; rights: Array<string>; effect?: "allow" | "ask" }): Promise<any>;
      /** Write object ``name`` (its latest version, or ``version``) to file ``path`` without reading it into your context. */
      to_file(args: { name: string; path: string; ns?: null | string; version?: null | number }): Promise<any>;
      to_file(name: string, rest?: { name?: string; path: string; ns?: null | string; version?: null | number }): Promise<any>;
      /** Write a new version of object ``name`` holding ``value``. With ``expect`` (the version you read) it fails with a conflict if someone wrote it since. */
      write(args: { name: string; value: unknown; ns?: null | string; expect?: null | number }): Promise<any>;
      write(name: string, rest?: { name?: string; value: unknown; ns?: null | string; expect?: null | number }): Promise<any>;
    };
    proc: {
      /** Change your working directory to ``path`` (relative paths resolve from it). */
      chdir(args: { path: string }): Promise<any>;
      chdir(path: string, rest?: { path?: string }): Promise<any>;
      /** Become image ``image`` (same pid, new tools, a new context with ``goal``). Every allow you hold is dropped except those whose pattern is in ``keep``; denies and asks always stay. */
      exec(args: { image: string; goal?: null | string; keep?: Array<string> }): Promise<any>;
      exec(image: string, rest?: { image?: string; goal?: null | string; keep?: Array<string> }): Promise<any>;
      /** End this process with status ok or failed and a result for whoever waits on it: ``result`` text, or the contents of ``file`` (a file you may read). */
      exit(args?: { status?: "failed" | "ok"; result?: string; file?: null | string }): Promise<any>;
      /** Start a child that sees your context so far, with ``goal``. ``mode`` worker: your grants are cut to read-only rights; speculative: it makes no outside effects and you take its result with proc_merge; copy: it goes on on its own. */
      fork(args: { mode: "copy" | "speculative" | "worker"; goal: string; name?: null | string; grants?: Array<unknown>; budget?: Record<string, unknown>; priority?: null | number }): Promise<any>;
      fork(mode: "copy" | "speculative" | "worker", rest?: { mode?: "copy" | "speculative" | "worker"; goal: string; name?: null | string; grants?: Array<unknown>; budget?: Record<string, unknown>; priority?: null | number }): Promise<any>;
      /** List your child processes with their states. */
      list(args?: {  }): Promise<any>;
      /** Take the result of child ``pid`` once it has exited (a speculative child's comes only this way), and the objects it wrote into your namespace (unless ``objects`` is false). */
      merge(args: { pid: number; objects?: boolean }): Promise<any>;
      merge(pid: number, rest?: { pid?: number; objects?: boolean }): Promise<any>;
      /** Send process ``pid`` a signal: interrupt (it reads ``text`` before its next model call), pause, resume, term (finish now, or be killed) or kill. */
      signal(args: { pid: number; signal: "interrupt" | "kill" | "pause" | "resume" | "term"; text?: string }): Promise<any>;
      signal(pid: number, rest?: { pid?: number; signal: "interrupt" | "kill" | "pause" | "resume" | "term"; text?: string }): Promise<any>;
      /** Start a child process named ``name`` with ``goal``. It gets only the ``grants`` you pass (a subset of yours), a ``budget`` within what you have left, and your image, model and working directory unless you name others. */
      spawn(args: { name: string; goal: string; image?: null | string; model?: null | string; cwd?: null | string; grants?: Array<unknown>; budget?: Record<string, unknown>; priority?: null | number }): Promise<any>;
      spawn(name: string, rest?: { name?: string; goal: string; image?: null | string; model?: null | string; cwd?: null | string; grants?: Array<unknown>; budget?: Record<string, unknown>; priority?: null | number }): Promise<any>;
      /** Collect the exit of child ``pid`` (any child when omitted). ``block``: wait for it (at most ``timeout`` seconds); otherwise return at once. */
      wait(args?: { pid?: null | number; block?: boolean; timeout?: null | number }): Promise<any>;
    };
    shell: {
      /** Run a program: ``argv`` is the program and its arguments as a list (never a string for a shell to parse). It runs in your working directory with stdin closed and a scrubbed environment; the result holds the exit code, stdout and stderr (cut, with their full sizes), the duration and whether a limit stopped it. ``timeout`` is in seconds. */
      run(args: { argv: Array<string>; timeout?: number }): Promise<any>;
      run(argv: Array<string>, rest?: { argv?: Array<string>; timeout?: number }): Promise<any>;
    };
    tool: {
      /** List the JIT tools of your own table, or of shared table ``table``. */
      list(args?: { table?: string }): Promise<any>;
      /** Propose a JIT tool ``name``: TypeScript ``source`` that exports ``async function run(args, libos)`` (one self-contained file, no imports; it reaches files, objects and people only through ``libos``), a ``description`` for the model, and ``parameters``, the JSON Schema of its arguments. Stored as object tools/NAME in your namespace; check it with tool_validate, then tool_register it. */
      propose(args: { name: string; source: string; description: string; parameters?: Record<string, unknown> }): Promise<any>;
      propose(name: string, rest?: { name?: string; source: string; description: string; parameters?: Record<string, unknown> }): Promise<any>;
      /** Register proposed tool ``name`` in your own tool table, or in shared table ``table`` (it is checked again first). Once registered, it is one of the tools you can call. */
      register(args: { name: string; table?: string; source?: string }): Promise<any>;
      register(name: string, rest?: { name?: string; table?: string; source?: string }): Promise<any>;
      /** Remove tool ``name`` from your own tool table, or from shared table ``table``. */
      unregister(args: { name: string; table?: string }): Promise<any>;
      unregister(name: string, rest?: { name?: string; table?: string }): Promise<any>;
      /** Check proposed tool ``name`` (object tools/NAME): the static policy, its imports and its types. Returns the problems found; none means tool_register will take it. */
      validate(args: { name: string }): Promise<any>;
      validate(name: string, rest?: { name?: string }): Promise<any>;
    };
  }
}
export {};
