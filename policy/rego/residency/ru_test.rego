# METADATA
# title: Russia decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_ru_machine_allowed := {
	"flow": {"category": "machine", "destination": "CN", "origin": "RU"},
	"expect": {"allow": true, "localization": "none"},
}

case_ru_personal_primary_in_country_and_rkn_notification := {
	"flow": {"category": "personal", "destination": "CN", "origin": "RU"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CONSENT+RU_RKN_NOTIFIED"], "reasons_contain": ["Art 18(5)", "Roskomnadzor must be notified"]},
}

case_ru_convention_108_adequacy_unconfirmed_needs_consent_too := {
	"flow": {"category": "personal", "destination": "DE", "origin": "RU"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CONSENT+RU_RKN_NOTIFIED"], "reasons_contain": ["Draft Law 951518-8", "treated as not adequate (cautious)"]},
}

case_ru_personal_with_notification_and_consent_allowed_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "RU", "safeguards": ["RU_RKN_NOTIFIED", "CONSENT"]},
	"expect": {"allow": true, "localization": "primary_in_country"},
}

case_ru_personal_with_notification_and_consent_allowed_2 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "RU", "safeguards": ["RU_RKN_NOTIFIED"]},
	"expect": {"allow": false},
}

case_ru_personal_to_non_adequate_needs_consent_too_1 := {
	"flow": {"category": "sensitive_personal", "destination": "CN", "origin": "RU"},
	"expect": {"allow": false, "requires": ["CONSENT+RU_RKN_NOTIFIED"]},
}

case_ru_personal_to_non_adequate_needs_consent_too_2 := {
	"flow": {"category": "sensitive_personal", "destination": "CN", "origin": "RU", "safeguards": ["CONSENT", "RU_RKN_NOTIFIED"]},
	"expect": {"allow": true},
}

case_ru_anonymisation_is_not_a_rewrite := {
	"flow": {"category": "personal", "destination": "DE", "origin": "RU", "transforms_applied": ["anonymized"]},
	"expect": {"allow": false, "reasons_contain": ["not recognised"]},
}

case_ru_important_core_no_rule_1 := {
	"flow": {"category": "important", "destination": "DE", "origin": "RU"},
	"expect": {"allow": false},
}

case_ru_important_core_no_rule_2 := {
	"flow": {"category": "core", "destination": "DE", "origin": "RU"},
	"expect": {"allow": false},
}

case_ru_citizen_overlay_on_eu_flow := {
	"flow": {"category": "personal", "destination": "FR", "origin": "DE", "subject": {"citizenship": "RU"}},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CONSENT+RU_RKN_NOTIFIED"], "reasons_contain": ["Subject overlay (citizenship RU)"]},
}

case_ru_citizen_overlay_satisfied_by_storing_in_russia := {
	"flow": {"category": "personal", "destination": "RU", "origin": "DE", "safeguards": ["SCC", "TIA"], "subject": {"citizenship": "RU"}},
	"expect": {"allow": true, "localization": "primary_in_country"},
}

case_ru_citizen_overlay_ignores_machine_data := {
	"flow": {"category": "machine", "destination": "US", "origin": "DE", "subject": {"citizenship": "RU"}},
	"expect": {"allow": true, "localization": "none"},
}
