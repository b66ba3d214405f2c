"""policy.vocabulary: the contract's closed sets read from the policy's data files (one copy, under policy/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, PolicyLoadError
from policy.vocabulary import VOCABULARY, load_vocabulary

DATA = DEFAULT_POLICY_DIR / "data"


def test_the_shipped_vocabulary_is_the_data_files() -> None:
    vocab = json.loads((DATA / "vocabulary.json").read_text())
    countries = json.loads((DATA / "countries.json").read_text())["codes"]
    assert VOCABULARY.safeguards == tuple(vocab["safeguards"])  # file order
    assert VOCABULARY.categories == tuple(vocab["categories"])
    assert VOCABULARY.entity_flags == tuple(vocab["entity_flags"])
    assert VOCABULARY.recipient_flags == tuple(vocab["recipient_flags"])
    assert VOCABULARY.transforms_applied == tuple(vocab["transforms_applied"])
    assert VOCABULARY.max_count == vocab["max_count"]
    assert VOCABULARY.countries == tuple(sorted(countries)) and len(VOCABULARY.countries) == 249


def test_a_drafts_vocabulary_is_its_own(policy_copy: Path) -> None:
    path = policy_copy / "data" / "vocabulary.json"
    vocab = json.loads(path.read_text())
    vocab["safeguards"]["XX_NEW_CLAUSES"] = "a safeguard a compliance officer adds"
    path.write_text(json.dumps(vocab))
    assert load_vocabulary(policy_copy).safeguards == (*VOCABULARY.safeguards, "XX_NEW_CLAUSES")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("vocabulary.json", "{not json", r"vocabulary\.json: cannot read the policy's vocabulary"),
        ("vocabulary.json", "[]", r"vocabulary\.json: not a JSON object"),
        ("vocabulary.json", '{"categories": []}', r"vocabulary\.json or .*countries\.json: missing or malformed"),
        ("countries.json", '{"codez": []}', r"countries\.json: missing or malformed 'codes'"),
    ],
)
def test_an_unreadable_vocabulary_names_the_file(policy_copy: Path, name: str, text: str, message: str) -> None:
    (policy_copy / "data" / name).write_text(text)
    with pytest.raises(PolicyLoadError, match=message):
        load_vocabulary(policy_copy)
