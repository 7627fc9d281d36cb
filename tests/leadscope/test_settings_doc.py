"""The README's configuration table lists every setting a user may set, with its real default."""

from __future__ import annotations

from pathlib import Path

from leadscope.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    # broken: a user could not find a limit or a path the code reads (LEADSCOPE_HOME, import limits…)
    text = README.read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `LEADSCOPE_{name.upper()}` |")), None)
        if row is None or (name != "home" and f"`{field.default}`" not in row):
            missing.append(name)
    assert not missing, missing
