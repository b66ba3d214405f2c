# METADATA
# title: China decision cases, including the CAC 2024 Provisions volume boundaries
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_cn_machine_to_us_allowed := {
	"flow": {"category": "machine", "destination": "US", "origin": "CN"},
	"expect": {"allow": true},
}

case_cn_ciio_with_assessment_allowed_but_localised := {
	"flow": {"category": "personal", "destination": "DE", "entity": {"ciio": true}, "origin": "CN", "safeguards": ["CN_SECURITY_ASSESSMENT"]},
	"expect": {"allow": true, "localization": "primary_in_country"},
}

case_cn_ciio_consent_alone_is_not_enough := {
	"flow": {"category": "personal", "destination": "DE", "entity": {"ciio": true}, "origin": "CN", "safeguards": ["CONSENT", "CN_STANDARD_CONTRACT"]},
	"expect": {"allow": false, "requires": ["CN_SECURITY_ASSESSMENT"]},
}

case_cn_ciio_hr_purpose_exempt_but_stored_in_china := {
	"flow": {"origin": "CN", "destination": "DE", "category": "personal", "entity": {"ciio": true}, "purpose": "hr_management"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["TIA"], "reasons_contain": ["Art 5(2)", "for a CIIO too", "store personal information in China"]},
}

case_cn_small_volume_exempt_needs_pipia_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 99999}},
	"expect": {"allow": false, "requires": ["TIA"], "reasons_contain": ["Art 5(4)"]},
}

case_cn_small_volume_exempt_needs_pipia_2 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "safeguards": ["TIA"], "volume": {"individuals_ytd": 99999}},
	"expect": {"allow": true},
}

case_cn_boundary_exactly_100000_is_art8 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 100000}},
	"expect": {"allow": false, "localization": "none", "requires": ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"], "reasons_contain": ["Art 8", "exactly 100,000"]},
}

case_cn_art8_with_standard_contract_allowed_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "safeguards": ["CN_STANDARD_CONTRACT"], "volume": {"individuals_ytd": 500000}},
	"expect": {"allow": true},
}

case_cn_art8_with_standard_contract_allowed_2 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "safeguards": ["CN_CERTIFICATION"], "volume": {"individuals_ytd": 500000}},
	"expect": {"allow": true},
}

case_cn_boundary_999999_is_art8 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 999999}},
	"expect": {"reasons_contain": ["Art 8"], "localization": "none"},
}

case_cn_boundary_exactly_1000000_is_art7 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 1000000}},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"], "reasons_contain": ["Art 7(2)", "exactly 1,000,000"]},
}

case_cn_contract_does_not_cure_art7_volume := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "safeguards": ["CN_STANDARD_CONTRACT", "CN_CERTIFICATION"], "volume": {"individuals_ytd": 1000000}},
	"expect": {"allow": false},
}

case_cn_sensitive_9999_is_art8 := {
	"flow": {"category": "sensitive_personal", "destination": "DE", "origin": "CN", "volume": {"sensitive_individuals_ytd": 9999}},
	"expect": {"reasons_contain": ["Art 8"], "localization": "none"},
}

case_cn_sensitive_exactly_10000_is_art7 := {
	"flow": {"category": "sensitive_personal", "destination": "DE", "origin": "CN", "volume": {"sensitive_individuals_ytd": 10000}},
	"expect": {"allow": false, "reasons_contain": ["Art 7(2)"], "localization": "primary_in_country"},
}

case_cn_sensitive_with_zero_counter_is_not_exempt := {
	"flow": {"category": "sensitive_personal", "destination": "DE", "origin": "CN"},
	"expect": {"reasons_contain": ["Art 8"]},
}

case_cn_hr_purpose_exempt_for_personal_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "purpose": "hr_management", "volume": {"individuals_ytd": 5000000}},
	"expect": {"allow": false, "requires": ["TIA"], "reasons_contain": ["Art 5(2)"]},
}

case_cn_hr_purpose_exempt_for_personal_2 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "purpose": "hr_management", "safeguards": ["TIA"]},
	"expect": {"allow": true},
}

case_cn_hr_purpose_not_applied_to_sensitive := {
	"flow": {"category": "sensitive_personal", "destination": "DE", "origin": "CN", "purpose": "hr_management"},
	"expect": {"reasons_contain": ["Art 8"]},
}

case_cn_anonymized_personal_is_machine := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "transforms_applied": ["anonymized"], "volume": {"individuals_ytd": 5000000}},
	"expect": {"allow": true, "reasons_contain": ["PIPL Art 4"]},
}

case_cn_important_primary_in_country_and_assessment_1 := {
	"flow": {"category": "important", "destination": "DE", "origin": "CN"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"]},
}

case_cn_important_primary_in_country_and_assessment_2 := {
	"flow": {"category": "important", "destination": "DE", "origin": "CN", "safeguards": ["CN_SECURITY_ASSESSMENT"]},
	"expect": {"allow": true},
}

case_cn_important_not_rewritten_by_anonymisation := {
	"flow": {"category": "important", "destination": "DE", "origin": "CN", "transforms_applied": ["anonymized"]},
	"expect": {"allow": false},
}

case_cn_core_in_country_only := {
	"flow": {"category": "core", "destination": "SG", "origin": "CN"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["CN_SECURITY_ASSESSMENT+STATE_APPROVAL"], "reasons_contain": ["unconfirmed"]},
}

case_cn_export_to_hong_kong_is_cross_border := {
	"flow": {"category": "important", "destination": "HK", "origin": "CN"},
	"expect": {"allow": false},
}

case_cn_foreign_authority_request_needs_approval := {
	"flow": {"category": "machine", "destination": "US", "origin": "CN", "purpose": "foreign_authority_request"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL"]},
}

case_cn_boundary_99999_with_one_sensitive_is_art8_not_exempt := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 99999, "sensitive_individuals_ytd": 1}},
	"expect": {"allow": false, "requires": ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"], "reasons_contain": ["Art 8"]},
}

case_cn_boundary_sensitive_10000_wins_over_small_individual_count := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CN", "volume": {"individuals_ytd": 5, "sensitive_individuals_ytd": 10000}},
	"expect": {"localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"]},
}

case_cn_machine_to_us_allowed_art3 := {
	"flow": {"origin": "CN", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "reasons_contain": ["Art 3"]},
}

case_cn_machine_to_de_allowed_art3 := {
	"flow": {"origin": "CN", "destination": "DE", "category": "machine"},
	"expect": {"allow": true, "reasons_contain": ["Art 3"]},
}

case_cn_ciio_personal_denied_to_de := {
	"flow": {"origin": "CN", "destination": "DE", "category": "personal", "entity": {"ciio": true}},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"], "reasons_contain": ["PIPL Art 40", "PIPL Art 39"]},
}

case_cn_ciio_personal_denied_to_us := {
	"flow": {"origin": "CN", "destination": "US", "category": "personal", "entity": {"ciio": true}},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"], "reasons_contain": ["PIPL Art 40", "PIPL Art 39"]},
}

case_cn_ciio_personal_denied_to_sg := {
	"flow": {"origin": "CN", "destination": "SG", "category": "personal", "entity": {"ciio": true}},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"], "reasons_contain": ["PIPL Art 40", "PIPL Art 39"]},
}
