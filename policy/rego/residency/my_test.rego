# METADATA
# title: Malaysia decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). PDPA 2010 s.129 as amended in 2024
#   (in force 1 Apr 2025) and the Cross Border Personal Data Transfer
#   Guideline 3/2025. A failing case prints the decision expected and the one
#   obtained.
package residency_test

case_my_machine_to_us_is_free := {
	"flow": {"origin": "MY", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "cites": "MY PDPA 2010 s.2, s.4"},
}

case_my_personal_has_no_whitelist_any_more := {
	"about": "the 2024 amendment removed the ministerial whitelist: no destination is free, not even Singapore",
	"flow": {"origin": "MY", "destination": "SG", "category": "personal"},
	"expect": {
		"allow": false, "localization": "none",
		"requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"],
		"reasons_contain": ["SG is not a free destination", "reassessed every three years"],
	},
}

case_my_personal_tia_without_its_date_is_not_in_force := {
	"about": "vocabulary.json safeguard_validity: MY_TIA counts only with its date (three-year validity, Guideline 3/2025); a dated one within three years is allowed (tests/policy/test_safeguard_validity.py: the dates move with the clock)",
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "safeguards": ["MY_TIA"]},
	"expect": {
		"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"],
		"reasons_contain": ["MY_TIA is not in force: its date (safeguard_dates.MY_TIA) is needed to know it is less than 3 years old"],
	},
}

case_my_personal_tia_older_than_three_years_has_lapsed := {
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "safeguards": ["MY_TIA"], "safeguard_dates": {"MY_TIA": "2022-05-02"}},
	"expect": {
		"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"],
		"reasons_contain": ["MY_TIA of 2022-05-02 lapsed on 2025-05-02"],
	},
}

case_my_personal_lapsed_tia_with_consent_is_allowed := {
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "safeguards": ["MY_TIA", "CONSENT"], "safeguard_dates": {"MY_TIA": "2022-05-02"}},
	"expect": {"allow": true, "reasons_contain": ["in force: CONSENT; allowed", "MY_TIA of 2022-05-02 lapsed on 2025-05-02"]},
}

case_my_personal_tia_date_that_is_no_date_is_refused := {
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "safeguards": ["MY_TIA"], "safeguard_dates": {"MY_TIA": "2025-13-01"}},
	"expect": {"allow": false, "requires": [], "reasons": ["Input rejected: safeguard_dates.MY_TIA is not a date (YYYY-MM-DD); default deny"]},
}

case_my_personal_with_consent_is_allowed := {
	"flow": {"origin": "MY", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]},
	"expect": {"allow": true},
}

case_my_personal_with_asean_mcc_is_allowed := {
	"about": "s.129(3)(f): contractual clauses are reasonable precautions and due diligence",
	"flow": {"origin": "MY", "destination": "US", "category": "personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "reasons_contain": ["in force: ASEAN_MCC; allowed"]},
}

case_my_personal_with_bcr_is_allowed := {
	"flow": {"origin": "MY", "destination": "DE", "category": "personal", "safeguards": ["BCR"]},
	"expect": {"allow": true},
}

case_my_personal_with_eu_scc_is_allowed := {
	"flow": {"origin": "MY", "destination": "DE", "category": "personal", "safeguards": ["SCC"]},
	"expect": {"allow": true},
}

case_my_personal_cbpr_certification_is_not_accepted := {
	"about": "which certifications the Guideline accepts was not found: no recipient flag (cautious)",
	"flow": {"origin": "MY", "destination": "US", "category": "personal", "recipient": {"cbpr_certified": true}},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"]},
}

case_my_personal_other_countries_assessments_do_not_count := {
	"about": "a Thai certified BCR, a Vietnamese dossier or a bare TIA are not Malaysian safeguards",
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "safeguards": ["TH_PDPC_BCR", "VN_TIA_FILED", "TIA"]},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"]},
}

case_my_personal_contract_necessity_is_not_a_basis_for_telemetry := {
	"about": "Guideline 3/2025: 'necessary' = not routine, one specific purpose, no feasible alternative",
	"flow": {"origin": "MY", "destination": "SG", "category": "personal", "purpose": "contract_with_individual"},
	"expect": {"allow": false, "reasons_contain": ["necessity for a contract (not routine, one specific purpose, no feasible alternative) is not accepted"]},
}

case_my_sensitive_with_asean_mcc_is_allowed := {
	"flow": {"origin": "MY", "destination": "SG", "category": "sensitive_personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "cites": "MY PDPA 2010 s.40, s.129(2)"},
}

case_my_sensitive_without_safeguard_is_denied := {
	"flow": {"origin": "MY", "destination": "JP", "category": "sensitive_personal"},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"], "reasons_contain": ["biometric data is sensitive personal data"]},
}

case_my_anonymisation_is_not_a_recognised_rewrite := {
	"about": "transforms.json: anonymisation rewrites the category for EU, UK and CN only",
	"flow": {"origin": "MY", "destination": "US", "category": "personal", "transforms_applied": ["anonymized"]},
	"expect": {"allow": false, "reasons_contain": ["anonymisation is not recognised as a category rewrite here"]},
}

case_my_domestic_personal_is_allowed := {
	"flow": {"origin": "MY", "destination": "MY", "category": "sensitive_personal"},
	"expect": {"allow": true, "localization": "none"},
}
