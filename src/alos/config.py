"""Model settings: which model, which server, which key. Resolved, never used, here.

Per setting the first found wins: flags, the environment (ALOS_MODEL, OPENAI_BASE_URL,
OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY), ``<cwd>/.alos/config.toml``, then
``$XDG_CONFIG_HOME/alos/config.toml`` (``~/.config/alos/config.toml``). The files are TOML:

    model = "openai:qwen2.5-coder"        # the default --model
    [openai]                              # and [anthropic], the same keys
    base_url = "http://127.0.0.1:8080/v1"
    api_key_env = "MY_KEY"                # or api_key = "..." (not both)
    timeout = 60                          # seconds per request (limits.MODEL_TIMEOUT_SECONDS)
    constrain = true                      # every request constrained to one declared call

The ``base_url``, ``api_key`` and ``constrain`` flags belong to the provider of the resolved model
(openai when it is neither). A workspace's file is not trusted with keys from elsewhere: it may not name
``api_key_env``, and a base URL it sets gets only a key set in that same file. A key is never in
a repr, an error or describe(). A config file others may read that holds a key is the user's
business (``chmod 600`` it); alos does not check.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alos import codec, limits
from alos.errors import Invalid, Unavailable

DEFAULT_STORE = os.path.join(".alos", "store.db")  # the store a command uses when none is named
OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
PROVIDERS = {  # spec prefix -> (default base URL, env var of the base URL, env var of the key)
    "openai": (OPENAI_BASE_URL, "OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": (ANTHROPIC_BASE_URL, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}
FLAGS = ("api_key", "base_url", "constrain", "model")
TABLE_KEYS = ("api_key", "api_key_env", "base_url", "constrain", "timeout")
TOP_KEYS = ("model", *PROVIDERS)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider's settings and where each came from (a flag, a variable, a file)."""

    base_url: str
    base_url_from: str  # "default" when nothing set it
    api_key: str | None = field(default=None, repr=False)
    api_key_from: str | None = None  # where the key was set, or why it is not used
    timeout: float = limits.MODEL_TIMEOUT_SECONDS
    constrain: bool = False


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The resolved model settings: the default model spec and each provider's settings."""

    model: str | None
    model_from: str | None
    providers: dict[str, ProviderConfig]

    def provider(self, kind: str) -> ProviderConfig:
        """Return the settings of provider ``kind`` ("openai" or "anthropic")."""
        return self.providers[kind]


def defaults() -> ModelConfig:
    """Return the settings when nothing is configured: no model, default servers, no keys."""
    return ModelConfig(None, None, {k: ProviderConfig(url, "default") for k, (url, _, _) in PROVIDERS.items()})


def load(cwd: str, flags: Mapping[str, str | None], *, env: Mapping[str, str] | None = None) -> ModelConfig:
    """Return the model settings for a run in ``cwd`` with command-line ``flags`` (api_key,
    base_url, constrain, model; None for a flag not given; constrain is on when set at all).

    Raises Invalid for a config file that is not TOML or holds an unknown key or a bad value,
    naming the file and the key; Unavailable for one the host may not read."""
    env = os.environ if env is None else env
    if set(flags) - set(FLAGS):
        raise ValueError(f"unknown flags {sorted(set(flags) - set(FLAGS))}")
    home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    workspace = os.path.join(cwd, ".alos", "config.toml")
    user = os.path.join(home, "alos", "config.toml")
    files = [(workspace, _file(workspace)), (user, _file(user))]
    for key in ("openai", "anthropic"):
        if "api_key_env" in files[0][1].get(key, {}):
            raise Invalid(
                f"{workspace}: [{key}] api_key_env is refused in a workspace's config (it could send any "
                "variable to any server); put it in ~/.config/alos/config.toml"
            )
    model, model_from = _first(
        [("--model", flags.get("model")), ("ALOS_MODEL", env.get("ALOS_MODEL"))]
        + [(path, data.get("model")) for path, data in files]
    )
    flagged = model.partition(":")[0] if model and model.partition(":")[0] in PROVIDERS else "openai"
    providers = {}
    for kind in PROVIDERS:
        own = flags if kind == flagged else {}
        providers[kind] = _provider(kind, own, env, [(path, data.get(kind, {})) for path, data in files], workspace)
    return ModelConfig(model, model_from, providers)


def _provider(
    kind: str,
    flags: Mapping[str, str | None],
    env: Mapping[str, str],
    tables: list[tuple[str, dict[str, Any]]],
    ws: str,
) -> ProviderConfig:
    """Return provider ``kind``'s settings from ``flags``, ``env`` and the files' ``tables`` (``ws``
    is the workspace's file)."""
    default, url_var, key_var = PROVIDERS[kind]
    url, url_from = _first(
        [("--base-url", flags.get("base_url")), (url_var, env.get(url_var))]
        + [(path, t.get("base_url")) for path, t in tables]
    )
    keys: list[tuple[str, str | None]] = [("--api-key", flags.get("api_key")), (key_var, env.get(key_var))]
    for path, table in tables:
        name = table.get("api_key_env")
        keys.append((f"{name} (api_key_env in {path})", env.get(name)) if name else (path, table.get("api_key")))
    if url_from == ws:  # a server the workspace names gets only the key the workspace gives it
        keys = [(path, key) for path, key in keys if path == ws]
    key, key_from = _first(keys)
    if url_from == ws and key is None:
        key_from = f"none: base_url is set by {ws}, which may send only a key it sets itself"
    if url is not None and not url.startswith(("http://", "https://")):
        raise Invalid(f"base_url {codec.escape(url)!r} from {url_from} is not an http:// or https:// URL")
    timeout, _ = _first([(path, t.get("timeout")) for path, t in tables])
    constrain, _ = _first(
        [("--constrain", flags.get("constrain"))] + [(path, t.get("constrain")) for path, t in tables]
    )
    return ProviderConfig(
        base_url=(url or default).rstrip("/"),
        base_url_from=url_from or "default",
        api_key=key,
        api_key_from=key_from,
        timeout=limits.MODEL_TIMEOUT_SECONDS if timeout is None else float(timeout),
        constrain=bool(constrain),
    )


def _first(candidates: list[tuple[str, Any]]) -> tuple[Any, str | None]:
    """Return the first set value (not None, not empty) and where it came from."""
    for source, value in candidates:
        if value is not None and value != "":
            return value, source
    return None, None


def describe(config: ModelConfig) -> list[dict[str, Any]]:
    """Return what ``alos models`` shows of each provider: spec prefix, base URL and its source,
    whether a key is set and where from (never the key), timeout, constrain, and the default model."""
    default_kind = (config.model or "").partition(":")[0]
    return [
        {
            "provider": kind,
            "spec": f"{kind}:MODEL",
            "default_model": config.model if kind == default_kind else None,
            "base_url": p.base_url,
            "base_url_from": p.base_url_from,
            "key": p.api_key is not None,
            "key_from": p.api_key_from,
            "timeout": p.timeout,
            "constrain": p.constrain,
        }
        for kind, p in config.providers.items()
    ]


def _file(path: str) -> dict[str, Any]:
    """Return the checked settings of config file ``path``; {} when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never blocks
    except FileNotFoundError:
        return {}
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            raise Unavailable(f"the host may not read config file {path} ({err.strerror}); fix its mode") from None
        raise Invalid(f"config file {path} cannot be opened ({err.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Invalid(f"config file {path} is not a regular file; remove it or make it one")
        data = os.read(fd, limits.IMAGE_MAX_BYTES + 1)  # a config file is no bigger than an image file
    finally:
        os.close(fd)
    if len(data) > limits.IMAGE_MAX_BYTES:
        raise Invalid(f"config file {path} is over {limits.IMAGE_MAX_BYTES} bytes")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise Invalid(f"config file {path} is not UTF-8 TOML ({err}); fix or remove it") from None
    _check(path, raw, TOP_KEYS, "")
    if not isinstance(raw.get("model", ""), str):
        raise Invalid(f'{path}: model must be a string like "openai:NAME"')
    for kind in PROVIDERS:
        table = raw.get(kind, {})
        if not isinstance(table, dict):
            raise Invalid(f"{path}: {kind} must be a table, [{kind}]")
        _check(path, table, TABLE_KEYS, f"[{kind}] ")
        _values(path, kind, table)
    return raw


def _check(path: str, table: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        shown = codec.escape(unknown[0])
        raise Invalid(f"{path}: unknown key {where}{shown!r}; the valid keys {where}are {', '.join(sorted(valid))}")


def _values(path: str, kind: str, table: dict[str, Any]) -> None:
    for key in ("base_url", "api_key", "api_key_env"):
        if not isinstance(table.get(key, "x"), str):
            raise Invalid(f"{path}: [{kind}] {key} must be a string")
    if "api_key" in table and "api_key_env" in table:
        raise Invalid(f"{path}: [{kind}] sets both api_key and api_key_env; keep one")
    timeout = table.get("timeout", 1.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not (math.isfinite(timeout) and timeout > 0)
    ):
        raise Invalid(f"{path}: [{kind}] timeout must be a number of seconds above 0")
    if not isinstance(table.get("constrain", False), bool):
        raise Invalid(f"{path}: [{kind}] constrain must be true or false")
