"""A generated set of flows across every modelled jurisdiction, category, safeguard set, recipient, entity
and subject flag, purpose, transform and volume boundary: for engine parity tests."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

_TODAY = dt.datetime.now(dt.UTC).date()
RECENT = (_TODAY - dt.timedelta(days=30)).isoformat()  # a dated safeguard in force (MY_TIA: three years)
LAPSED = f"{_TODAY.year - 3}-{_TODAY:%m-%d}"  # its third anniversary is today: lapsed

# One origin per regime (NO: the EEA-EFTA side of the EU regime), plus HK (no regime: the UNLISTED table).
ORIGINS = [
    "DE",
    "NO",
    "GB",
    "CH",
    "US",
    "CN",
    "RU",
    "IN",
    "VN",
    "SG",
    "JP",
    "KR",
    "BR",
    "ID",
    "SA",
    "AU",
    "CA",
    "MY",
    "TH",
    "PH",
    "MX",
    "HK",
]
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
    {"safeguards": ["ASEAN_MCC"]},
    {"safeguards": ["MY_TIA", "TH_PDPC_BCR"]},
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
        {
            "origin": o,
            "destination": d,
            "category": c,
            "volume": {"individuals_ytd": n, "sensitive_individuals_ytd": n if c == "sensitive_personal" else 0},
        }
        for (o, d), c, n in itertools.product(VOLUME_ROUTES, ["personal", "sensitive_personal"], COUNTS)
    ]
    flows += [
        {"origin": "XX", "destination": "DE", "category": "machine"},
        {"origin": "DE", "destination": "DE", "category": "telemetry"},
        {"origin": "de", "destination": " us ", "category": "personal", "safeguards": ["TIA", "SCC", "TIA"]},
    ]
    return flows


# --- the parity corpus: every modelled origin x a spread of destinations x category, with variations -----

# Every regime's members are represented (EEA-EFTA exporters separately), plus origins no regime names (HK, BD).
PARITY_ORIGINS = [
    "DE",
    "FR",
    "NO",
    "IS",
    "LI",
    "GB",
    "CH",
    "US",
    "CN",
    "RU",
    "IN",
    "VN",
    "SG",
    "JP",
    "KR",
    "BR",
    "ID",
    "SA",
    "AU",
    "CA",
    "MY",
    "TH",
    "PH",
    "MX",
    "HK",
    "BD",
]
# One destination of every kind an adequacy list or group names: EEA, listed with a recipient condition,
# listed for some exporters only, unconfirmed entries, countries of concern, nobody's list.
PARITY_DESTINATIONS = ["US", "DE", "CN", "GB", "CH", "JP", "KR", "BR", "CA", "SG", "RU", "FO", "IS", "HK", "MY"]
PARITY_VARIANTS: list[dict[str, Any]] = [
    *VARIANTS,
    {"safeguards": ["SCC", "BCR", "TIA"]},  # two alternatives satisfied at once (review defect 1)
    {"safeguards": ["SCC", "CONSENT"]},
    {"safeguards": ["SCC", "BCR", "CONSENT", "TIA", "UK_IDTA", "VN_TIA_FILED", "RU_RKN_NOTIFIED"]},
    {"safeguards": ["ASEAN_MCC", "MY_TIA", "TH_PDPC_BCR", "TIA"]},
    {"safeguards": ["MY_TIA"], "safeguard_dates": {"MY_TIA": RECENT}},
    {"safeguards": ["MY_TIA", "SCC"], "safeguard_dates": {"MY_TIA": LAPSED, "SCC": LAPSED}},
    {"safeguards": ["CN_SECURITY_ASSESSMENT", "CN_STANDARD_CONTRACT", "CN_CERTIFICATION", "TIA"]},
    {"recipient": {"covered_person": True}, "volume": {"individuals_12m": 200000}},
    {"entity": {"ciio": True}, "purpose": "hr_management"},
    {"entity": {"subdivision": "CA-QC"}, "safeguards": ["SCC", "TIA", "BCR"]},
    {"subject": {"citizenship": "us"}, "volume": {"individuals_ytd": 150000}},
    {"purpose": "contract_with_individual"},
    {"purpose": "emergency", "volume": {"sensitive_individuals_ytd": 20000}},
    {"volume": {"precise_geolocation_devices_12m": 1001}},
    {"transforms_applied": ["anonymized", "pseudonymized"]},
]
# Malformed and adversarial inputs: both engines must deny them the same way (review defects 2 to 4).
ODD_INPUTS: list[Any] = [
    {},
    {"origin": "DE", "category": "machine"},
    {"origin": "DE", "destination": "US"},
    {"destination": "US", "category": "machine"},
    ["DE", "US"],
    "DE",
    {"origin": "DE\u00a0", "destination": "US", "category": "machine"},
    {"origin": "\u017fg", "destination": "US", "category": "machine"},
    {"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "QC\u00a0"}},
    {"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "XX"}},
    {"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "US-QC"}},
    {"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": 7}},
    {"origin": "DE", "destination": "CN", "category": "personal", "subject": {"citizenship": "US\u00a0"}},
    {"origin": "DE", "destination": "CN", "category": "personal", "subject": {"citizenship": "ZZ"}},
    {"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_ytd": 2**63}},
    {"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_12m": 10**18}},
    {"origin": "VN", "destination": "SG", "category": "personal", "volume": {"individuals_ytd": 2**64 + 1}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 5_000_000_000}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 10_000_000_000}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 10_000_000_001}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 1.5}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": -1}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": None}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": "many"}},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": 5},
    {"origin": "DE", "destination": "US", "category": "personal", "recipient": {"dpf_certified": "yes"}},
    {"origin": "DE", "destination": "US", "category": "personal", "recipient": None},
    {"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC", 1]},
    {"origin": "DE", "destination": "US", "category": "personal", "transforms_applied": ["encrypted"]},
    {"origin": "DE", "destination": "US", "category": "personal", "purpose": 3},
    {
        "origin": "MY",
        "destination": "SG",
        "category": "personal",
        "safeguards": ["MY_TIA"],
        "safeguard_dates": {"MY_TIA": "2999-01-01"},
    },
    {
        "origin": "MY",
        "destination": "SG",
        "category": "personal",
        "safeguards": ["MY_TIA"],
        "safeguard_dates": {"MY_TIA": "2025-02-30 "},
    },
    {"origin": "MY", "destination": "SG", "category": "personal", "safeguard_dates": ["MY_TIA"]},
    {"origin": "DE", "destination": "US", "category": "personal\u00a0"},
    {"origin": "de", "destination": "\tus ", "category": "machine"},
    {"origin": " de", "destination": "us ", "category": "machine"},
]


def parity_corpus() -> list[Any]:
    """A few thousand inputs: origins x destinations x categories, then every variation of a personal (or
    sensitive) flow from every origin to the US or China, the volume boundaries, and the odd inputs."""
    flows: list[Any] = [
        {"origin": o, "destination": d, "category": c}
        for o, d, c in itertools.product(PARITY_ORIGINS, PARITY_DESTINATIONS, CATEGORIES)
    ]
    flows += [
        {
            "origin": o,
            "destination": "CN" if o == "US" or i % 2 else "US",
            "category": "sensitive_personal" if i % 3 == 2 else "personal",
            **v,
        }
        for o, (i, v) in itertools.product(PARITY_ORIGINS, enumerate(PARITY_VARIANTS))
    ]
    flows += [
        {
            "origin": o,
            "destination": d,
            "category": c,
            "volume": {
                "individuals_ytd": n,
                "sensitive_individuals_ytd": n if c == "sensitive_personal" else 0,
                "individuals_12m": n + k,
                "precise_geolocation_devices_12m": n,
            },
        }
        for (o, d), c, n, k in itertools.product(
            [*VOLUME_ROUTES, ("US", "SG"), ("DE", "CN")],
            ["personal", "sensitive_personal", "machine"],
            COUNTS,
            [0, 1],
        )
    ]
    return flows + ODD_INPUTS
