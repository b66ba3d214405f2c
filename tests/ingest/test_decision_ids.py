"""The audit trail's ids: documents and distinct decisions (ingest.decision_ids)."""

import copy
import pickle
import random
import uuid

from ingest.decision_ids import DOC_NAMESPACE, DecisionIds, canonical_doc, decision_id, doc_id
from ingest.records import ID_NAMESPACE
from policy.models import Decision

DECISION = Decision(
    allow=True, localization="none", requires=[], transforms={}, reasons=["ok"], policy_revision="sha256:r"
)


def test_decision_id_is_uuid5_of_device_category_region_outcome_and_document() -> None:
    doc = uuid.UUID(int=7)
    assert decision_id("dev-1", "personal", "us-east", "denied", doc) == uuid.uuid5(
        ID_NAMESPACE, f"dev-1/personal/us-east/denied/{doc}"
    )
    assert decision_id("dev-1", "personal", "us-east", "denied", doc).version == 5


def test_decision_id_is_a_complete_uuid_for_any_input() -> None:
    """decision_id builds the UUID without UUID.__init__: the same value, text, hash, version and variant, and an
    object that pickles and copies like one (random device ids, non-ASCII included)."""
    rng = random.Random(17)
    for _ in range(2000):
        device = "".join(rng.choices("abcxyz-_0189é中/", k=rng.randint(1, 40)))
        doc = uuid.UUID(int=rng.getrandbits(128))
        got = decision_id(device, "machine", "eu-central", "stored", doc)
        want = uuid.uuid5(ID_NAMESPACE, f"{device}/machine/eu-central/stored/{doc}")
        assert (got, got.int, str(got), hash(got), got.version, got.variant, got.is_safe) == (
            want,
            want.int,
            str(want),
            hash(want),
            want.version,
            want.variant,
            want.is_safe,
        )
    one = decision_id("dev-1", "personal", "us-east", "stored", uuid.UUID(int=1))
    assert pickle.loads(pickle.dumps(one)) == one and copy.deepcopy(one) == one and isinstance(one, uuid.UUID)


def test_a_document_id_depends_on_content_not_on_objects_or_key_order() -> None:
    policy_input = {"origin": "DE", "destination": "US", "category": "personal"}
    reordered = dict(reversed(list(policy_input.items())))
    assert doc_id(DECISION, policy_input) == doc_id(DECISION.model_copy(), reordered)
    assert doc_id(DECISION, policy_input) == uuid.uuid5(DOC_NAMESPACE, canonical_doc(DECISION, policy_input))
    assert doc_id(DECISION, policy_input) != doc_id(DECISION, {**policy_input, "category": "machine"})
    assert doc_id(DECISION, policy_input) != doc_id(DECISION.model_copy(update={"policy_revision": "x"}), policy_input)


def test_memoised_ids_equal_computed_ones_and_bounded() -> None:
    ids = DecisionIds(limit=4)
    inputs = [{"category": f"c{n}"} for n in range(10)]
    for _ in range(2):
        for n, policy_input in enumerate(inputs):
            did, doc = ids.of(f"dev-{n % 3}", "machine", "eu-central", "stored", DECISION, policy_input)
            assert doc == doc_id(DECISION, policy_input)
            assert did == decision_id(f"dev-{n % 3}", "machine", "eu-central", "stored", doc)
    assert len(ids._docs) <= 4 and len(ids._decisions) <= 4
