# METADATA
# title: Philippines decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). Data Privacy Act 2012 s.21
#   (accountability), IRR 2016 s.50(a), NPC Advisory 2024-01 on model
#   contractual clauses. A failing case prints the decision expected and the
#   one obtained.
package residency_test

case_ph_machine_to_us_is_free := {
	"flow": {"origin": "PH", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "cites": "PH Data Privacy Act 2012 s.3(g), s.4"},
}

case_ph_personal_needs_contractual_or_group_means := {
	"about": "s.21: no restriction, but the controller must give comparable protection by contractual or other reasonable means",
	"flow": {"origin": "PH", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "SCC"], "cites": "PH Data Privacy Act 2012 s.21"},
}

case_ph_personal_with_asean_mcc_is_allowed := {
	"about": "NPC Advisory 2024-01 names the ASEAN MCC",
	"flow": {"origin": "PH", "destination": "SG", "category": "personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true},
}

case_ph_personal_with_eu_scc_is_allowed := {
	"flow": {"origin": "PH", "destination": "US", "category": "personal", "safeguards": ["SCC"]},
	"expect": {"allow": true},
}

case_ph_personal_with_bcr_is_allowed := {
	"flow": {"origin": "PH", "destination": "JP", "category": "personal", "safeguards": ["BCR"]},
	"expect": {"allow": true},
}

case_ph_consent_alone_is_not_accepted := {
	"about": "consent does not discharge the accountability duty (unconfirmed: cautious)",
	"flow": {"origin": "PH", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "BCR", "SCC"], "reasons_contain": ["consent alone is not accepted (cautious)"]},
}

case_ph_cbpr_certification_alone_is_not_accepted := {
	"about": "the Philippines is a Global CBPR member, but certification of the recipient is not named as a means here (cautious)",
	"flow": {"origin": "PH", "destination": "US", "category": "personal", "recipient": {"cbpr_certified": true}},
	"expect": {"allow": false},
}

case_ph_sensitive_with_asean_mcc_is_allowed := {
	"flow": {"origin": "PH", "destination": "SG", "category": "sensitive_personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "cites": "PH Data Privacy Act 2012 s.13, s.21"},
}
