# METADATA
# title: Vietnam decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_vn_machine_allowed := {
	"flow": {"category": "machine", "destination": "SG", "origin": "VN"},
	"expect": {"allow": true},
}

case_vn_personal_to_sg_needs_tia_filed_1 := {
	"flow": {"category": "personal", "destination": "SG", "origin": "VN"},
	"expect": {"allow": false, "requires": ["VN_TIA_FILED"]},
}

case_vn_personal_to_sg_needs_tia_filed_2 := {
	"flow": {"category": "personal", "destination": "SG", "origin": "VN", "safeguards": ["VN_TIA_FILED"]},
	"expect": {"allow": true},
}

case_vn_sensitive_needs_tia_filed := {
	"flow": {"category": "sensitive_personal", "destination": "JP", "origin": "VN", "safeguards": ["CONSENT"]},
	"expect": {"allow": false},
}

case_vn_important_needs_state_approval_1 := {
	"flow": {"category": "important", "destination": "SG", "origin": "VN"},
	"expect": {"allow": false, "requires": ["STATE_APPROVAL"]},
}

case_vn_important_needs_state_approval_2 := {
	"flow": {"category": "important", "destination": "SG", "origin": "VN", "safeguards": ["STATE_APPROVAL"]},
	"expect": {"allow": true},
}

case_vn_core_in_country_only := {
	"flow": {"category": "core", "destination": "SG", "origin": "VN"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL"]},
}

case_vn_personal_volume_makes_it_important := {
	"flow": {"category": "personal", "destination": "SG", "origin": "VN", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 100000}},
	"expect": {"allow": false, "requires": ["STATE_APPROVAL"], "reasons_contain": ["classified important"]},
}

case_vn_personal_volume_below_important_is_personal_only := {
	"flow": {"category": "personal", "destination": "SG", "origin": "VN", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 99999}},
	"expect": {"allow": true},
}

case_vn_personal_volume_makes_it_core := {
	"flow": {"category": "sensitive_personal", "destination": "SG", "origin": "VN", "volume": {"sensitive_individuals_ytd": 100000}},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL+VN_TIA_FILED"]},
}

case_vn_boundary_sensitive_exactly_10000_is_important := {
	"flow": {"category": "sensitive_personal", "destination": "SG", "origin": "VN", "safeguards": ["VN_TIA_FILED"], "volume": {"sensitive_individuals_ytd": 10000}},
	"expect": {"allow": false, "localization": "none", "reasons_contain": ["classified important"]},
}

case_vn_boundary_sensitive_9999_is_not_important := {
	"flow": {"category": "sensitive_personal", "destination": "SG", "origin": "VN", "safeguards": ["VN_TIA_FILED"], "volume": {"sensitive_individuals_ytd": 9999}},
	"expect": {"allow": true},
}

case_vn_boundary_999999_is_important := {
	"flow": {"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 999999}},
	"expect": {"localization": "none", "requires": ["STATE_APPROVAL"], "reasons_contain": ["classified important"]},
}

case_vn_boundary_1000000_is_core := {
	"flow": {"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 1000000}},
	"expect": {"localization": "in_country_only", "reasons_contain": ["classified core"]},
}

case_vn_hr_exemption_of_decree_356_is_unconfirmed_so_not_applied := {
	"about": "Decree 356/2025 exemptions (regimes.json VN exempt_purposes, confirmed: false)",
	"flow": {"category": "personal", "destination": "SG", "origin": "VN", "purpose": "hr_management"},
	"expect": {"allow": false, "requires": ["VN_TIA_FILED"], "reasons_contain": ["purpose hr_management is reported exempt (VN Decree 356/2025", "unconfirmed: not applied (cautious)"]},
}

case_vn_asean_mcc_is_no_substitute_for_the_tia_dossier := {
	"flow": {"category": "personal", "destination": "SG", "origin": "VN", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": false, "requires": ["VN_TIA_FILED"]},
}
