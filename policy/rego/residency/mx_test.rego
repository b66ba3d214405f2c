# METADATA
# title: Mexico decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). Federal Law on the Protection of
#   Personal Data Held by Private Parties (LFPDPPP), DOF 20 Mar 2025. A
#   failing case prints the decision expected and the one obtained.
package residency_test

case_mx_machine_to_us_is_free := {
	"about": "Mexico has its own table now: no longer the UNLISTED one",
	"flow": {"origin": "MX", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "cites": "MX LFPDPPP 2025 (scope: personal data)"},
}

case_mx_personal_needs_consent_or_group_policy := {
	"flow": {"origin": "MX", "destination": "US", "category": "personal"},
	"expect": {
		"allow": false, "requires": ["BCR", "CONSENT"], "cites": "MX LFPDPPP 2025, transfers",
		"reasons_contain": ["unconfirmed: the 2025 text's article numbers"],
	},
}

case_mx_personal_with_consent_is_allowed := {
	"flow": {"origin": "MX", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]},
	"expect": {"allow": true},
}

case_mx_personal_within_the_group_is_allowed := {
	"flow": {"origin": "MX", "destination": "DE", "category": "personal", "safeguards": ["BCR"]},
	"expect": {"allow": true},
}

case_mx_personal_contract_clauses_alone_are_not_a_basis := {
	"about": "the law asks for consent or an exception; SCC / ASEAN MCC are neither",
	"flow": {"origin": "MX", "destination": "US", "category": "personal", "safeguards": ["SCC", "ASEAN_MCC"]},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT"]},
}

case_mx_sensitive_group_exception_not_applied := {
	"about": "whether the group exception covers sensitive data is unconfirmed: only consent (cautious)",
	"flow": {"origin": "MX", "destination": "US", "category": "sensitive_personal", "safeguards": ["BCR"]},
	"expect": {"allow": false, "requires": ["CONSENT"], "reasons_contain": ["the group exception is not applied to sensitive personal data"]},
}

case_mx_sensitive_with_consent_is_allowed := {
	"flow": {"origin": "MX", "destination": "US", "category": "sensitive_personal", "safeguards": ["CONSENT"]},
	"expect": {"allow": true},
}
