"""docs/presets.md: the preset the guide ends with is the fixture tests/fixtures/presets_guide/acrobot_ppo.py, and it
validates as the guide shows (seed 0)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlframe.cli import validate_main

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "presets.md"
FIXTURE = ROOT / "tests" / "fixtures" / "presets_guide" / "acrobot_ppo.py"
#: the comment in the guide right before the final preset's code block
MARKER = "<!-- final preset: tests/fixtures/presets_guide/acrobot_ppo.py -->"


def final_preset_in_guide() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    assert MARKER in text, f"docs/presets.md lost the line {MARKER!r} that marks its final preset"
    match = re.match(r"\s*```python\n(.*?)```", text.split(MARKER, 1)[1], re.DOTALL)
    assert match, "the final preset's marker in docs/presets.md is not followed by a ```python block"
    return match.group(1)


@pytest.mark.integration
def test_the_guide_shows_the_fixture_preset() -> None:
    assert final_preset_in_guide() == FIXTURE.read_text(encoding="utf-8"), (
        "docs/presets.md's final preset and tests/fixtures/presets_guide/acrobot_ppo.py differ: change both (and "
        "rerun the guide's rlframe-validate command for its output)"
    )


@pytest.mark.golden
def test_the_guide_preset_validates_as_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As the guide runs it: the file in the current directory (tmp_path, see conftest), found by its name.
    (tmp_path / "acrobot_ppo.py").write_text(FIXTURE.read_text(encoding="utf-8"), encoding="utf-8")
    code = validate_main(["-p", "acrobot_ppo.py", "--seed", "0", "-ep", str(tmp_path / "exp")])
    out = capsys.readouterr().out
    assert code == 0, out.splitlines()[-1]
    # Episode 62 on the machine the guide was written on; another CPU's float rounding may pass a little
    # earlier or later, so only the verdict is checked.
    assert "PASSED: acrobot_ppo.py (seed 0) reached evaluation reward >= -100 at episode" in out
