"""README "Extending": its plugin file, command and config work as written, from the command line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import selective_kd

README = Path(__file__).resolve().parent.parent / "README.md"
SRC = str(Path(selective_kd.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}


def extending_blocks(lang: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Extending"):text.index("## Layout")]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def plugin_file(folder: Path) -> Path:
    """The README's plugin, saved under the name its first line gives."""
    [code] = extending_blocks("python")
    name = re.match(r"# (\S+\.py):", code)
    assert name is not None, "the plugin block starts with '# FILE.py: ...'"
    path = folder / name.group(1)
    path.write_text(code, encoding="utf-8")
    return path


def selective_kd_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "selective_kd", *args], cwd=folder, capture_output=True, text=True,
                          env=ENV, timeout=900)


def test_readme_config_and_components_listing_see_the_plugin(tmp_path: Path) -> None:
    plugin = plugin_file(tmp_path)
    [config] = extending_blocks("yaml")
    (tmp_path / "mine.yaml").write_text(config)
    r = selective_kd_cli(tmp_path, "components", "--config", "mine.yaml", "pacing", "scorers")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert f"[plugin {plugin.name}]" in rows["cosine"] and "b=0.2" in rows["cosine"]
    assert f"[plugin {plugin.name}]" in rows["half-teacher"] and "needs teacher" in rows["half-teacher"]


@pytest.mark.slow
def test_readme_command_runs_the_plugin_end_to_end(tmp_path: Path) -> None:
    from conftest import TINY

    plugin = plugin_file(tmp_path)
    [command] = extending_blocks("bash")
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["selective-kd", "run"] and argv[argv.index("--plugin") + 1] == plugin.name
    out = tmp_path / "run"
    r = selective_kd_cli(tmp_path, *argv[1:], *TINY, "data.limit_train=200", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "curriculum.json").read_text())["scorer"] == "half-teacher"
    paced = json.loads((out / "students/paced/result.json").read_text())["identity"]
    assert paced["variant"]["pacing"] == "cosine" and paced["variant"]["pacing_params"] == {"b": 0.1}
    assert paced["plugins"] == {plugin.name: hashlib.sha256(plugin.read_bytes()).hexdigest()}
