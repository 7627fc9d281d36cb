"""Both YAML configurations (signals mapping, action catalogue) refuse bad files with the file and field named."""

from __future__ import annotations

import pytest

from leadscope import catalogue
from serving.signals import mapping


@pytest.mark.parametrize(
    ("module", "text", "message"),
    [
        (mapping, "stages: [1, 2", "signals mapping: .* is not valid YAML"),
        (mapping, "stages: {}\nplatforms: {}\ncolour: red\n", "signals mapping m.yaml: colour: Extra inputs"),
        (catalogue, "actions: []\n", "action catalogue m.yaml: actions: List should have at least 1 item"),
    ],
)
def test_bad_files_are_refused_naming_file_and_field(tmp_path, module, text, message) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        module.load(path)
    with pytest.raises(ValueError, match="not found"):
        module.load(tmp_path / "missing.yaml")
