"""The examples of the docs that need a live tree run as written, on the session's cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
EXAMPLES = [
    (f"sdk.md#{i}", code)
    for i, code in enumerate(BLOCK.findall((ROOT / "docs" / "sdk.md").read_text()))
]


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_sdk_example_runs(
    ray_cluster: None, where: str, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ```python block of docs/sdk.md executes without error (its asserts included)."""
    monkeypatch.chdir(ROOT)
    exec(compile(code, where, "exec"), {"__name__": f"example:{where}"})
