"""A generated set of flows across every modelled jurisdiction, category, safeguard set, recipient, entity
and subject flag, purpose, transform and volume boundary: for engine parity tests."""

from __future__ import annotations

import itertools
from typing import Any

# One origin per regime (NO: the EEA-EFTA side of the EU regime), plus HK (no regime: default deny).
ORIGINS = ["DE", "NO", "GB", "CH", "US", "CN", "RU", "IN", "VN", "SG", "JP", "KR", "BR", "ID", "SA", "AU", "CA", "HK"]
DESTINATIONS = ["US", "DE", "CN"]
CATEGORIES = ["machine", "personal", "sensitive_personal", "important", "core"]
VARIANTS: list[dict[str, Any]] = [
    {"safeguards": ["SCC", "TIA"]},
    {"safeguards": ["BCR"]},
    {"safeguards": ["CONSENT", "RU_RKN_NOTIFIED"]},
    {"safeguards": ["VN_TIA_FILED", "STATE_APPROVAL"]},
    {"safeguards": ["CN_STANDARD_CONTRACT", "TIA"]},
    {"safeguards": ["CN_SECURITY_ASSESSMENT", "STATE_APPROVAL"]},
    {"safeguards": ["UK_IDTA", "TIA"]},
    {"recipient": {"dpf_certified": True, "uk_extension": True, "swiss_dpf_certified": True}},
    {"recipient": {"cbpr_certified": True, "pipeda": True, "appi": True}},
    {"entity": {"ciio": True}},
    {"entity": {"public_scope": True, "cni": True}},
    {"entity": {"subdivision": "ON"}},
    {"subject": {"citizenship": "RU"}},
    {"subject": {"citizenship": "US", "government_related": True}},
    {"purpose": "hr_management"},
    {"purpose": "payment_data"},
    {"purpose": "foreign_authority_request"},
    {"transforms_applied": ["anonymized"]},
    {"transforms_applied": ["pseudonymized", "aggregated"]},
]
# China's, Vietnam's and the DOJ rule's thresholds and their neighbours.
COUNTS = [0, 1, 1000, 1001, 9999, 10000, 99999, 100000, 100001, 999999, 1000000]
VOLUME_ROUTES = [("CN", "DE"), ("VN", "SG"), ("US", "CN")]


def generated_flows() -> list[dict[str, Any]]:
    flows: list[dict[str, Any]] = [
        {"origin": o, "destination": d if d != o else "GB", "category": c}
        for o, d, c in itertools.product(ORIGINS, DESTINATIONS, CATEGORIES)
    ]
    flows += [{"origin": o, "destination": o, "category": "core"} for o in ORIGINS]
    flows += [
        {"origin": o, "destination": "CN" if o == "US" else "US", "category": "personal", **v}
        for o, v in itertools.product(ORIGINS, VARIANTS)
    ]
    flows += [
        {"origin": o, "destination": d, "category": c,
         "volume": {"individuals_ytd": n, "sensitive_individuals_ytd": n if c == "sensitive_personal" else 0}}
        for (o, d), c, n in itertools.product(VOLUME_ROUTES, ["personal", "sensitive_personal"], COUNTS)
    ]
    flows += [
        {"origin": "XX", "destination": "DE", "category": "machine"},
        {"origin": "DE", "destination": "DE", "category": "telemetry"},
        {"origin": "de", "destination": " us ", "category": "personal", "safeguards": ["TIA", "SCC", "TIA"]},
    ]
    return flows
