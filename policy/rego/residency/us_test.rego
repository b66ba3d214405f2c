# METADATA
# title: United States decision cases, including the DOJ 28 CFR Part 202 overlay
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_us_machine_allowed_everywhere := {
	"flow": {"category": "machine", "destination": "CN", "origin": "US"},
	"expect": {"allow": true},
}

case_us_personal_to_de_allowed := {
	"flow": {"category": "personal", "destination": "DE", "origin": "US"},
	"expect": {"allow": true, "localization": "none"},
}

case_us_sensitive_to_de_allowed := {
	"flow": {"category": "sensitive_personal", "destination": "DE", "origin": "US", "volume": {"sensitive_individuals_ytd": 50000}},
	"expect": {"allow": true},
}

case_us_important_core_no_rule_1 := {
	"flow": {"category": "important", "destination": "DE", "origin": "US"},
	"expect": {"allow": false},
}

case_us_important_core_no_rule_2 := {
	"flow": {"category": "core", "destination": "DE", "origin": "US"},
	"expect": {"allow": false},
}

case_doj_personal_below_bulk_threshold_allowed := {
	"flow": {"category": "personal", "destination": "CN", "origin": "US", "volume": {"individuals_ytd": 100000}},
	"expect": {"allow": true, "reasons_contain": ["below the bulk thresholds"]},
}

case_doj_personal_over_bulk_threshold_denied := {
	"flow": {"category": "personal", "destination": "CN", "origin": "US", "volume": {"individuals_ytd": 100001}},
	"expect": {"allow": false, "requires": [], "reasons_contain": ["28 CFR Part 202"]},
}

case_doj_sensitive_threshold_is_more_than_1000_1 := {
	"flow": {"category": "sensitive_personal", "destination": "RU", "origin": "US", "volume": {"sensitive_individuals_ytd": 1000}},
	"expect": {"allow": true},
}

case_doj_sensitive_threshold_is_more_than_1000_2 := {
	"flow": {"category": "sensitive_personal", "destination": "RU", "origin": "US", "volume": {"sensitive_individuals_ytd": 1001}},
	"expect": {"allow": false},
}

case_doj_is_transform_blind := {
	"flow": {"category": "sensitive_personal", "destination": "HK", "origin": "US", "transforms_applied": ["anonymized"], "volume": {"sensitive_individuals_ytd": 5000}},
	"expect": {"allow": false, "reasons_contain": ["regardless of anonymisation"]},
}

case_doj_no_consent_exemption := {
	"flow": {"category": "personal", "destination": "CN", "origin": "US", "safeguards": ["CONSENT", "SCC", "BCR", "TIA"], "volume": {"individuals_ytd": 200000}},
	"expect": {"allow": false},
}

case_doj_government_related_has_no_threshold := {
	"flow": {"category": "personal", "destination": "VE", "origin": "US", "subject": {"government_related": true}},
	"expect": {"allow": false},
}

case_doj_applies_to_us_citizens_data_from_elsewhere := {
	"flow": {"category": "personal", "destination": "CN", "origin": "DE", "safeguards": ["SCC", "TIA"], "subject": {"citizenship": "US"}, "volume": {"individuals_ytd": 150000}},
	"expect": {"allow": false, "requires": []},
}

case_doj_not_for_non_concern_destination := {
	"flow": {"category": "personal", "destination": "SG", "origin": "US", "volume": {"individuals_ytd": 5000000}},
	"expect": {"allow": true},
}
