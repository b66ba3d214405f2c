# METADATA
# title: Decision contract tests
# description: |
#   Contract shape, domestic flows, unknown codes and categories, malformed
#   input, requires semantics. Tests call residency.decide(flow) rather than
#   `with input as` (see policy/README.md: rego-cpp 1.x crashes on `with input
#   as` when the rule queried depends on other rules); both `opa test` and
#   `python -m policy test` run them.
package residency_test

import data.residency

test_decision_has_every_contract_field if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "machine"})
	object.keys(d) == {"allow", "localization", "requires", "transforms", "reasons", "policy_revision"}
	is_boolean(d.allow)
	is_array(d.requires)
	is_object(d.transforms)
	count(d.reasons) > 0
}

test_domestic_flow_allowed_for_every_category if {
	results := [d.allow |
		some cat in ["machine", "personal", "sensitive_personal", "important", "core"]
		some origin in ["DE", "CN", "RU", "VN", "US", "IN", "SG"]
		d := residency.decide({"origin": origin, "destination": origin, "category": cat})
	]
	count(results) == 35
	every a in results {
		a == true
	}
}

test_domestic_core_keeps_localization_reason if {
	d := residency.decide({"origin": "CN", "destination": "CN", "category": "core"})
	d.allow
	d.localization == "in_country_only"
	d.requires == []
	startswith(d.reasons[0], "Domestic flow")
}

test_domestic_unmodelled_country_allowed if {
	residency.decide({"origin": "MX", "destination": "MX", "category": "personal"}).allow
}

test_unknown_origin_denied_with_reason if {
	d := residency.decide({"origin": "XX", "destination": "DE", "category": "machine"})
	not d.allow
	d.requires == []
	contains(d.reasons[0], "unknown origin country code XX")
}

test_unknown_destination_denied_even_when_same_as_origin if {
	d := residency.decide({"origin": "ZZ", "destination": "ZZ", "category": "machine"})
	not d.allow
	count(d.reasons) == 2
}

test_unknown_category_denied if {
	d := residency.decide({"origin": "DE", "destination": "FR", "category": "telemetry"})
	not d.allow
	contains(d.reasons[0], "unknown category telemetry")
}

test_missing_fields_denied if {
	d := residency.decide({"origin": "DE"})
	not d.allow
	d.reasons == [
		"Input rejected: category is missing or not a string; default deny",
		"Input rejected: destination is missing or not a string; default deny",
	]
}

test_non_object_input_denied if {
	d := residency.decide(["DE", "US"])
	not d.allow
	d.reasons == ["Input rejected: the input is not a JSON object; default deny"]
}

test_wrong_types_denied if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "machine", "volume": {"individuals_ytd": "many"}, "safeguards": "SCC"})
	not d.allow
	count(d.reasons) == 2
}

test_lowercase_codes_are_normalised if {
	residency.decide({"origin": "de", "destination": " fr ", "category": "personal"}).allow
}

test_unmodelled_origin_denied if {
	d := residency.decide({"origin": "MX", "destination": "US", "category": "machine"})
	not d.allow
	contains(d.reasons[0], "No residency rule is modelled for origin MX")
}

test_category_without_rule_denied if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "important"})
	not d.allow
	startswith(d.reasons[0], "EU GDPR Chapter V (Art 44-49): the EU/EEA rule table has no rule for category important")
	contains(d.reasons[0], "default deny (cautious)")
}

test_requires_drops_codes_already_in_force if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC"]})
	not d.allow
	d.requires == ["TIA"]
}

test_requires_combines_overlays if {
	d := residency.decide({
		"origin": "DE", "destination": "US", "category": "personal",
		"subject": {"citizenship": "RU"},
	})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["BCR+CONSENT+RU_RKN_NOTIFIED+TIA", "CONSENT+RU_RKN_NOTIFIED+SCC+TIA"]
}

test_allowed_decision_has_no_requires if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["BCR", "TIA"]})
	d.allow
	d.requires == []
}

test_flow_lists_are_read_from_their_own_keys if {
	f := residency._flow({
		"origin": "DE", "destination": "US", "category": "personal",
		"safeguards": ["SCC"], "transforms_applied": ["pseudonymized"],
	})
	f.safeguards == {"SCC"}
	f.transforms == {"pseudonymized"}
}
