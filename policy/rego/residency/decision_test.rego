# METADATA
# title: Decision logic tests, on fixture data
# description: |
#   The logic of the decision (contract shape, domestic flows, input
#   validation, adequacy entries, alternatives, recipient flags, requires,
#   localisation, unlisted origins), tested on a small fixture world, never
#   on the facts of data/: a compliance officer who changes a fact breaks
#   only the decision cases about it (*_test.rego `case_*` rules), never
#   these. The rule `fixture` names the data files it replaces: the runner
#   (`python -m policy test`, policy/rego_tests.py) evaluates this package
#   with data.residency_data.<name> replaced by fixture.<name>. (Not `with
#   data.residency_data.regimes as ...`: rego-cpp 1.5 runs out of memory on
#   any `with data...` over this policy.) ./scripts/test also runs them
#   under OPA.
package residency_test.logic

import data.residency

# Fixture: Andorra (AD) exports under regime ONE, Bhutan (BT) under TWO, every other valid code under REST.
_regimes := {
	"ONE": {
		"name": "One", "law": "Law One", "members": ["AD"],
		"categories": {
			"machine": {"localization": "none", "free_to": ["*"], "cite": "One Art 1", "free": "free"},
			"personal": {
				"localization": "none", "free_to": ["list:ONE_ADEQ"],
				"alternatives": [["X", "Y"], ["Z", "Y"], ["W"]], "recipient_flags": ["cbpr_certified", "appi"],
				"cite": "One Art 2", "free": "adequate", "need": "needs X+Y, Z+Y or W",
				"exempt_purposes": {"hr": {"cite": "One Art 7", "confirmed": true}, "pay": {"cite": "One Art 8", "confirmed": false}},
			},
			"sensitive_personal": {
				"localization": "primary_in_country", "free_to": [], "alternatives": [["W"]],
				"cite": "One Art 3", "need": "needs W",
			},
		},
		"entity_overrides": {"cni": {
			"localization": "in_country_only", "alternatives": [["Q"]], "cite": "One Art 9", "need": "needs Q",
		}},
	},
	"TWO": {
		"name": "Two", "law": "Law Two", "members": ["BT"],
		"categories": {"machine": {"localization": "none", "free_to": ["*"], "cite": "Two Art 1", "free": "free"}},
	},
	"REST": {
		"name": "unlisted", "law": "No rule", "unlisted": true, "members": [],
		"categories": {"machine": {"localization": "none", "free_to": ["*"], "cite": "Rest Art 0", "free": "free"}},
	},
}

_adequacy := {"ONE_ADEQ": {"entries": [
	"BT",
	{"c": "CL", "decision": "D-1", "requires_recipient": "dpf_certified"},
	{"c": "DM", "decision": "D-2", "unconfirmed": true, "note": "not retrieved"},
	{"c": "EC", "decision": "D-3", "until": "2000-01-01"},
	{"c": "FJ", "decision": "D-4", "unconfirmed_for_origins": ["AD"], "note": "pending"},
	"BT",
]}}

fixture := {"regimes": _regimes, "adequacy": _adequacy}

_decide(flow) := residency.decide(flow)

_personal(dest, extra) := _decide(object.union({"origin": "AD", "destination": dest, "category": "personal"}, extra))

test_decision_has_every_contract_field if {
	d := _decide({"origin": "AD", "destination": "BT", "category": "machine"})
	object.keys(d) == {"allow", "localization", "requires", "transforms", "reasons", "policy_revision"}
	is_boolean(d.allow)
	is_array(d.requires)
	is_object(d.transforms)
	count(d.reasons) > 0
}

test_domestic_flow_allowed_for_every_category_even_without_a_rule if {
	results := [d.allow |
		some cat in ["machine", "personal", "sensitive_personal", "important", "core"]
		some origin in ["AD", "BT", "MX"]
		d := _decide({"origin": origin, "destination": origin, "category": cat})
	]
	count(results) == 15
	every a in results {
		a == true
	}
}

test_domestic_flow_keeps_the_localisation_reason if {
	d := _decide({"origin": "AD", "destination": "AD", "category": "sensitive_personal"})
	d.allow
	d.localization == "primary_in_country"
	d.requires == []
	startswith(d.reasons[0], "Domestic flow")
	d.reasons[1] == "Localisation primary_in_country: One Art 3: needs W"
}

test_unknown_origin_denied_with_reason if {
	d := _decide({"origin": "XX", "destination": "BT", "category": "machine"})
	not d.allow
	d.requires == []
	d.reasons == ["Input rejected: unknown origin country code XX (not ISO 3166-1 alpha-2); default deny"]
}

test_unknown_destination_denied_even_when_same_as_origin if {
	d := _decide({"origin": "ZZ", "destination": "ZZ", "category": "machine"})
	not d.allow
	count(d.reasons) == 2
}

test_unknown_category_denied if {
	d := _decide({"origin": "AD", "destination": "BT", "category": "telemetry"})
	not d.allow
	contains(d.reasons[0], "unknown category telemetry")
}

# OPA reads `not is_string(obj[key])` as undefined for a missing key (rego-cpp as true): every field is
# read with object.get, so both engines deny (review defect 4).
test_missing_fields_denied if {
	_decide({"origin": "AD"}).reasons == [
		"Input rejected: category is missing or not a string; default deny",
		"Input rejected: destination is missing or not a string; default deny",
	]
	_decide({}).reasons == [
		"Input rejected: category is missing or not a string; default deny",
		"Input rejected: destination is missing or not a string; default deny",
		"Input rejected: origin is missing or not a string; default deny",
	]
	not _decide({"origin": "AD", "category": "machine"}).allow
}

test_non_object_input_denied if {
	d := _decide(["AD", "BT"])
	not d.allow
	d.reasons == ["Input rejected: the input is not a JSON object; default deny"]
}

test_wrong_types_denied if {
	d := _decide({"origin": "AD", "destination": "BT", "category": "machine", "volume": {"individuals_ytd": "many"}, "safeguards": "X"})
	not d.allow
	d.reasons == [
		"Input rejected: safeguards is not a list; default deny",
		"Input rejected: volume.individuals_ytd is not a whole number from 0 to 10000000000; default deny",
	]
}

test_counters_are_whole_numbers_within_the_bound if {
	not _decide({"origin": "AD", "destination": "BT", "category": "machine", "volume": {"individuals_12m": -1}}).allow
	not _decide({"origin": "AD", "destination": "BT", "category": "machine", "volume": {"individuals_12m": 1.5}}).allow
	not _decide({"origin": "AD", "destination": "BT", "category": "machine", "volume": {"individuals_12m": 10000000001}}).allow
	_decide({"origin": "AD", "destination": "BT", "category": "machine", "volume": {"individuals_12m": 10000000000}}).allow
}

test_codes_are_ascii_letters_with_spaces_trimmed if {
	f := residency._flow({"origin": " ad", "destination": "bt ", "category": "machine", "subject": {"citizenship": "us"}})
	f.problems == []
	[f.origin, f.destination, f.citizenship] == ["AD", "BT", "US"]
	every code in ["AD\u00a0", "\tAD", "A", "ADX", "A1", "\u017fg"] {
		count(residency._flow({"origin": code, "destination": "BT", "category": "machine"}).problems) == 1
	}
}

test_subdivision_is_an_iso_3166_2_code if {
	residency._flow({"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "ca-qc"}}).subdivision == "QC"
	every sub in ["QC\u00a0", "", "QUEBEC", "US-QC", "XX"] {
		count(residency._flow({"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": sub}}).problems) == 1
	}
}

test_flow_lists_are_read_from_their_own_keys if {
	f := residency._flow({
		"origin": "AD", "destination": "BT", "category": "personal",
		"safeguards": ["X"], "transforms_applied": ["pseudonymized"],
	})
	f.safeguards == {"X"}
	f.transforms == {"pseudonymized"}
}

test_twelve_month_counts_never_below_year_to_date if {
	f := residency._flow({"origin": "AD", "destination": "BT", "category": "personal", "volume": {"individuals_ytd": 10000, "individuals_12m": 9999}})
	f.individuals_12m == 10000
	g := residency._flow({"origin": "AD", "destination": "BT", "category": "personal", "volume": {"individuals_ytd": 9999, "individuals_12m": 10000}})
	g.individuals_12m == 10000
}

test_adequacy_entries if {
	_personal("BT", {}).allow # listed twice: one decision
	not _personal("CL", {}).allow # requires_recipient
	_personal("CL", {"recipient": {"dpf_certified": true}}).allow
	d := _personal("DM", {})
	not d.allow
	contains(d.reasons[0], "DM: D-2; does not apply: unconfirmed (not retrieved), treated as not adequate")
	contains(_personal("EC", {}).reasons[0], "expired on 2000-01-01")
	contains(_personal("FJ", {}).reasons[0], "unconfirmed for exporters in AD (pending)")
}

test_requires_lists_every_alternative_minus_what_is_in_force if {
	_personal("GA", {}).requires == ["W", "X+Y", "Y+Z"]
	_personal("GA", {"safeguards": ["Y"]}).requires == ["W", "X", "Z"]
}

# Review defect 1: two satisfied alternatives gave two values of one function (eval_conflict_error in OPA).
test_two_satisfied_alternatives_give_one_decision if {
	d := _personal("GA", {"safeguards": ["X", "Y", "Z", "W"]})
	d.allow
	d.requires == []
	d.reasons == ["One Art 2: GA is not a free destination for this data; in force: X+Y and Y+Z and W; allowed"]
}

test_two_recipient_flags_give_one_decision if {
	d := _personal("GA", {"recipient": {"cbpr_certified": true, "appi": true}})
	d.allow
	d.reasons == ["One Art 2: GA is not a free destination for this data; recipient.cbpr_certified and recipient.appi are true; allowed"]
}

test_requires_combines_every_denial_and_the_highest_localisation_wins if {
	d := _personal("GA", {"entity": {"cni": true}})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["Q+W", "Q+X+Y", "Q+Y+Z"]
}

test_allowed_decision_has_no_requires if {
	d := _personal("GA", {"safeguards": ["W"]})
	d.allow
	d.requires == []
}

test_category_without_rule_denied_citing_the_law if {
	d := _decide({"origin": "BT", "destination": "AD", "category": "important"})
	not d.allow
	d.requires == []
	d.reasons == ["Law Two: the Two rule table has no rule for category important from this origin; default deny (cautious) until one is added to data/regimes.json"]
}

test_unlisted_origin_gets_the_unlisted_regime if {
	m := _decide({"origin": "MX", "destination": "AD", "category": "machine"})
	m.allow
	m.reasons == ["Rest Art 0: free; allowed"]
	not _decide({"origin": "MX", "destination": "AD", "category": "personal"}).allow
}

test_exempt_purposes_apply_only_once_confirmed if {
	_personal("GA", {"purpose": "hr"}).reasons == ["One Art 2: purpose hr is exempt (One Art 7); allowed"]
	d := _personal("GA", {"purpose": "pay"})
	not d.allow
	endswith(d.reasons[0], "; purpose pay is reported exempt (One Art 8) but that is unconfirmed: not applied (cautious)")
}
