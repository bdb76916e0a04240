"""Tree spec files: TOML, YAML and JSON load the same tree; bad files name field and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from actors._model_demo import DEMO_TREE
from actors.specfile import SpecError, load_spec, parse_spec
from vsm.spec import TreeSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo-tree.toml"

YAML_BAD = """\
name: broken
root:
  name: root
  capabilities:
    - name: echo
      kernel: echo
  children:
    - name: a
      capabilities:
        - name: a.sum
          cost: -1
          kernel: sum
"""

TOML_BAD = """\
name = "broken"

[root]
name = "root"

[[root.children]]
name = "a"
placement = "everywhere"
"""


def test_the_example_spec_is_the_demo_tree_in_every_format(tmp_path: Path) -> None:
    expected = TreeSpec.model_validate(DEMO_TREE)
    assert load_spec(EXAMPLE) == expected
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(DEMO_TREE))
    (tmp_path / "t.json").write_text(json.dumps(DEMO_TREE, indent=2))
    assert load_spec(tmp_path / "t.yaml") == expected
    assert load_spec(tmp_path / "t.json") == expected


def test_a_bad_yaml_field_is_named_with_its_exact_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(YAML_BAD, "yaml", "broken.yaml")
    assert caught.value.problems == [
        ("root.children.0.capabilities.0.cost", 11, "Input should be greater than or equal to 0")
    ]
    assert "broken.yaml" in str(caught.value)
    assert "(line 11)" in str(caught.value)


def test_a_bad_toml_field_is_named_with_its_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(TOML_BAD, "toml", "broken.toml")
    ((field, line, why),) = caught.value.problems
    assert (field, line) == ("root.children.0.placement", 8)
    assert "'node', 'system' or 'pooled'" in why


def test_a_missing_required_field_points_at_its_parent_in_yaml() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("name: t\nroot:\n  capabilities: []\n", "yaml")
    assert caught.value.problems[0][:2] == ("root.name", 2)


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [
        ('name = "t"\nroot = {name = \n', "toml", 2),
        ("name: t\nroot: [\n", "yaml", 3),
        ('{"name": "t",\n "root": }', "json", 2),
    ],
)
def test_malformed_files_give_the_parser_line(text: str, kind: str, line: int) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, kind)
    assert caught.value.problems[0][1] == line


def test_missing_files_and_unknown_kinds_say_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read it"):
        load_spec(tmp_path / "nope.toml")
    (tmp_path / "tree.ini").write_text("x")
    with pytest.raises(SpecError, match=r"unknown kind '\.ini'"):
        load_spec(tmp_path / "tree.ini")
    with pytest.raises(SpecError, match="expected a table"):
        parse_spec("- 1\n- 2\n", "yaml")
