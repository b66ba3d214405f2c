"""ingest.yaml_model.load_model: the messages a bad YAML file gets (file, line, field)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, field_validator


class Bad(Exception):
    pass


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int

    @field_validator("size")
    @classmethod
    def positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("size must be positive")
        return v


class Doc(BaseModel):
    name: str
    items: dict[str, Inner] = {}


def _load(tmp_path: Path, text: str) -> Doc:
    from ingest.yaml_model import load_model

    path = tmp_path / "doc.yaml"
    path.write_text(text)
    return load_model(path, Doc, what="doc file", not_a_mapping="must be a mapping with name", error=Bad)


def test_a_valid_file_gives_the_model(tmp_path: Path) -> None:
    assert _load(tmp_path, "name: x\nitems:\n  a: {size: 2}\n") == Doc(name="x", items={"a": Inner(size=2)})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nitems:\n  a:\n    size: 0\n", ":4: items.a.size: size must be positive"),  # no "Value error, "
        ("name: x\nitems:\n  a:\n    size: 1\n    colour: red\n", ":5: items.a.colour: Extra inputs are not permitted"),
        ("items: {}\n", ": name: Field required"),
        ("[1, 2]\n", ": must be a mapping with name"),
        ("name: [\n", ":2: not valid YAML"),
    ],
)
def test_errors_name_the_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(Bad) as err:
        _load(tmp_path, text)
    assert str(err.value).startswith(f"{tmp_path / 'doc.yaml'}{expected}"), str(err.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    from ingest.yaml_model import load_model

    with pytest.raises(Bad, match=r"nope\.yaml: cannot read doc file: No such file"):
        load_model(tmp_path / "nope.yaml", Doc, what="doc file", not_a_mapping="-", error=Bad)
