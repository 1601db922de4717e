"""Model settings: flags, then the environment, then the workspace's and the user's config files;
bad files named with the bad key; keys never shown and never handed to a workspace's server."""

import asyncio
import os
from pathlib import Path

import pytest

from alos import limits
from alos.config import ANTHROPIC_BASE_URL, OPENAI_BASE_URL, describe, load
from alos.errors import Invalid
from alos.providers.base import ModelRequest
from alos.providers.model import open_model
from tests.fakes import openai_server as wire
from tests.fakes.fixtures import openai_server
from tests.fakes.server import FakeServer

__all__ = ["openai_server"]

KEY = "sk-user-key-0123456789abcdef"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A workspace, an XDG config home, and an environment that points at it."""
    ws, home = tmp_path / "ws", tmp_path / "xdg"
    (ws / ".alos").mkdir(parents=True)
    (home / "alos").mkdir(parents=True)
    return ws, home, {"XDG_CONFIG_HOME": str(home)}


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_nothing_configured_gives_the_public_servers_and_no_key(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    ws, _, env = dirs
    config = load(str(ws), {}, env=env)
    assert config.model is None
    assert config.provider("openai").base_url == OPENAI_BASE_URL and config.provider("openai").api_key is None
    assert config.provider("anthropic").base_url == ANTHROPIC_BASE_URL
    assert config.provider("openai").timeout == limits.MODEL_TIMEOUT_SECONDS


def test_each_setting_comes_from_the_first_place_that_sets_it(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    ws, home, env = dirs
    write(
        home / "alos" / "config.toml",
        'model = "anthropic:user"\n[openai]\nbase_url = "http://user/v1"\napi_key = "u"\ntimeout = 9\n[anthropic]\napi_key_env = "MY_CLAUDE"\n',
    )
    write(ws / ".alos" / "config.toml", 'model = "openai:ws"\n[openai]\nconstrain = true\n')
    config = load(str(ws), {}, env={**env, "MY_CLAUDE": "c-key"})
    assert (config.model, config.model_from) == ("openai:ws", str(ws / ".alos" / "config.toml"))
    openai = config.provider("openai")
    assert (openai.base_url, openai.api_key, openai.timeout, openai.constrain) == ("http://user/v1", "u", 9.0, True)
    anthropic = config.provider("anthropic")
    assert anthropic.api_key == "c-key" and anthropic.api_key_from.startswith("MY_CLAUDE (api_key_env in ")

    config = load(
        str(ws), {}, env={**env, "ALOS_MODEL": "openai:env", "OPENAI_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "e"}
    )
    assert (config.model, config.model_from) == ("openai:env", "ALOS_MODEL")
    assert (config.provider("openai").base_url, config.provider("openai").api_key) == ("http://env/v1", "e")

    flags = {"model": "openai:flag", "base_url": "http://flag/v1/", "api_key": "f", "constrain": None}
    config = load(str(ws), flags, env={**env, "OPENAI_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "e"})
    assert (config.model, config.provider("openai").base_url, config.provider("openai").api_key) == (
        "openai:flag",
        "http://flag/v1",
        "f",
    )
    assert config.provider("openai").base_url_from == "--base-url"


def test_flags_belong_to_the_provider_of_the_model(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    ws, _, env = dirs
    config = load(
        str(ws), {"model": "anthropic:claude", "base_url": "http://proxy", "api_key": "k", "constrain": "true"}, env=env
    )
    assert config.provider("anthropic").base_url == "http://proxy" and config.provider("anthropic").api_key == "k"
    assert config.provider("anthropic").constrain
    assert config.provider("openai").base_url == OPENAI_BASE_URL and config.provider("openai").api_key is None


def test_a_workspace_file_never_gets_a_key_set_elsewhere(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    ws, _, env = dirs
    write(ws / ".alos" / "config.toml", '[openai]\nbase_url = "https://evil.example/v1"\n')
    config = load(str(ws), {}, env={**env, "OPENAI_API_KEY": KEY})
    assert config.provider("openai").base_url == "https://evil.example/v1"
    assert config.provider("openai").api_key is None
    assert "base_url is set by" in (config.provider("openai").api_key_from or "")
    write(ws / ".alos" / "config.toml", '[openai]\nbase_url = "http://127.0.0.1:8080/v1"\napi_key = "local"\n')
    assert load(str(ws), {}, env={**env, "OPENAI_API_KEY": KEY}).provider("openai").api_key == "local"
    write(ws / ".alos" / "config.toml", '[openai]\napi_key_env = "AWS_SECRET_ACCESS_KEY"\n')
    with pytest.raises(Invalid, match="api_key_env is refused in a workspace"):
        load(str(ws), {}, env=env)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('modle = "openai:x"\n', "unknown key 'modle'; the valid keys are anthropic, model, openai"),
        (
            '[openai]\nbase_ulr = "http://x"\n',
            "unknown key [openai] 'base_ulr'; the valid keys [openai] are api_key, api_key_env, base_url, constrain, timeout",
        ),
        ("[mistral]\n", "unknown key 'mistral'"),
        ("model = 3\n", "model must be a string"),
        ("openai = 1\n", "openai must be a table"),
        ('[openai]\napi_key = "a"\napi_key_env = "B"\n', "sets both api_key and api_key_env"),
        ("[openai]\ntimeout = 0\n", "timeout must be a number of seconds above 0"),
        ("[openai]\ntimeout = true\n", "timeout must be a number"),
        ("[openai]\ntimeout = inf\n", "timeout must be a number"),
        ('[openai]\nconstrain = "yes"\n', "constrain must be true or false"),
        ("[openai]\nbase_url = 5\n", "base_url must be a string"),
        ('[openai]\nbase_url = "file:///etc/passwd"\n', "is not an http:// or https:// URL"),
        ("model = \n", "is not UTF-8 TOML"),
    ],
)
def test_a_bad_user_file_is_refused_naming_the_file_and_the_key(
    dirs: tuple[Path, Path, dict[str, str]], text: str, words: str
) -> None:
    ws, home, env = dirs
    path = home / "alos" / "config.toml"
    write(path, text)
    with pytest.raises(Invalid) as err:
        load(str(ws), {}, env=env)
    assert words in str(err.value)
    assert str(path) in str(err.value) or "from" in str(err.value)


def test_a_fifo_or_directory_as_config_file_is_refused_without_blocking(
    dirs: tuple[Path, Path, dict[str, str]],
) -> None:
    ws, home, env = dirs
    os.mkfifo(ws / ".alos" / "config.toml")
    with pytest.raises(Invalid, match="not a regular file"):
        load(str(ws), {}, env=env)
    os.unlink(ws / ".alos" / "config.toml")
    (home / "alos" / "config.toml").mkdir()
    with pytest.raises(Invalid, match="not a regular file"):
        load(str(ws), {}, env=env)


def test_no_key_is_ever_shown(dirs: tuple[Path, Path, dict[str, str]]) -> None:
    ws, home, env = dirs
    write(home / "alos" / "config.toml", f'model = "openai:gpt"\n[anthropic]\napi_key = "{KEY}-anthropic"\n')
    config = load(str(ws), {}, env={**env, "OPENAI_API_KEY": KEY})
    assert KEY not in repr(config) and KEY not in str(config) and KEY not in repr(config.provider("openai"))
    rows = describe(config)
    assert KEY not in repr(rows)
    assert [(r["provider"], r["key"], r["key_from"], r["default_model"]) for r in rows] == [
        ("openai", True, "OPENAI_API_KEY", "openai:gpt"),
        ("anthropic", True, str(home / "alos" / "config.toml"), None),
    ]
    assert rows[0]["base_url"] == OPENAI_BASE_URL and rows[0]["base_url_from"] == "default"


def test_the_user_file_is_under_home_dot_config_without_xdg(tmp_path: Path) -> None:
    (tmp_path / ".config" / "alos").mkdir(parents=True)
    write(tmp_path / ".config" / "alos" / "config.toml", 'model = "openai:home"\n')
    assert load(str(tmp_path / "nowhere"), {}, env={"HOME": str(tmp_path)}).model == "openai:home"
    xdg = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}
    assert load(str(tmp_path / "nowhere"), {}, env=xdg).model is None


def test_an_opened_model_uses_the_configured_server_and_key(
    dirs: tuple[Path, Path, dict[str, str]], openai_server: FakeServer
) -> None:
    ws, home, env = dirs
    write(
        home / "alos" / "config.toml",
        f'[openai]\nbase_url = "{wire.base_url(openai_server)}"\napi_key_env = "K"\nconstrain = true\n',
    )
    config = load(str(ws), {}, env={**env, "K": KEY})
    openai_server.push(wire.reply("hi"))
    model = open_model("openai:qwen", config)
    tools = [{"type": "function", "function": {"name": "fs_read", "parameters": {"type": "object"}}}]

    async def go() -> str:
        try:
            return (await model.complete(ModelRequest("main", 0, [{"role": "user", "content": "x"}], tools))).content
        finally:
            await model.aclose()

    assert asyncio.run(go()) == "hi"
    seen = openai_server.requests[0]
    assert (
        seen.headers["authorization"] == f"Bearer {KEY}"
        and seen.body["model"] == "qwen"
        and "response_format" in seen.body
    )
    assert KEY not in repr(model)
