"""README "Extending": its two examples register real components that a run can use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from selective_kd.cli import main
from selective_kd.curriculum import PACING, SCORERS

README = Path(__file__).resolve().parent.parent / "README.md"


def extending_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Extending"):text.index("## Layout")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_readme_examples_add_a_pacing_function_and_a_scorer_that_runs(tmp_path: Path) -> None:
    blocks = extending_blocks()
    assert len(blocks) == 2
    for code in blocks:
        try:
            exec(compile(code, "README.md", "exec"), {})
        except ValueError as exc:  # registered by an earlier run of this test in this process
            assert "registered twice" in str(exc)
    assert "half-teacher" in SCORERS.names()
    assert PACING.get("cosine").fn(1.0, b=0.2) == pytest.approx(1.0)
    from conftest import TINY

    out = tmp_path / "ext"
    args = ["run", "--quiet", "--out", str(out), *TINY, "data.limit_train=200", "curriculum.scorer=half-teacher",
            "distill.custom_variants={paced: {order: curriculum, pacing: cosine, pacing_params: {b: 0.1}}}",
            "distill.variants=[paced]"]
    assert main(args) == 0
    assert (out / "students/paced/result.json").is_file()
