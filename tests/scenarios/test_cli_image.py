"""alos image list|show as a person reads them, with and without a store (docs/images.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli


def test_list_without_a_store_shows_the_built_ins_and_as_json_one_line_each(tmp_path: Path) -> None:
    r = run_cli("image", "list", "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in ("base", "reader", "coder", "reviewer", "toolmaker"))
    r = run_cli("image", "list", "--json", "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["name"] for row in rows] == ["base", "reader", "coder", "reviewer", "toolmaker"]
    assert not (tmp_path / "none.db").exists()  # looking creates no store


def test_show_tells_the_defaults_and_what_an_image_requests(tmp_path: Path) -> None:
    r = run_cli("image", "show", "coder", "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for part in ("tools:", "budget:", "model:", "max_tokens=", "requests (granted only with --grant-requested"):
        assert part in r.stdout, r.stdout
    r = run_cli("image", "show", "coder", "--json", "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert json.loads(r.stdout)["name"] == "coder"


def test_show_a_file_and_a_registered_version(tmp_path: Path) -> None:
    img = tmp_path / "mine.yaml"
    img.write_text("name: mine\ndescription: mine\ntools: [fs.read, proc.exit]\ncontext: {max_tokens: 4000}\n")
    r = run_cli("image", "show", str(img), "--store", str(tmp_path / "none.db"), cwd=tmp_path)
    assert r.returncode == 0 and "context: 4000 tokens" in r.stdout and "requests no grants" in r.stdout, r.stdout
    store = str(tmp_path / "s" / "s.db")
    assert run_cli("image", "register", str(img), "--store", store, cwd=tmp_path).returncode == 0
    r = run_cli("image", "show", "mine@1", "--store", store, cwd=tmp_path)
    assert r.returncode == 0 and "store:mine@1" in r.stdout, r.stdout
    r = run_cli("image", "list", "--store", store, cwd=tmp_path)
    assert "mine" in r.stdout and "1" in r.stdout
