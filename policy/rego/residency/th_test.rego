# METADATA
# title: Thailand decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). PDPA B.E. 2562 s.28-29 and the PDPC
#   notifications under s.28 and s.29 (in force 24 Mar 2024). A failing case
#   prints the decision expected and the one obtained.
package residency_test

case_th_machine_to_cn_is_free := {
	"flow": {"origin": "TH", "destination": "CN", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "cites": "TH PDPA B.E. 2562 s.6"},
}

case_th_personal_no_adequate_destination_listed := {
	"about": "adequacy.json TH_ADEQ is empty: the PDPC has listed no adequate destination, the EEA included",
	"flow": {"origin": "TH", "destination": "DE", "category": "personal"},
	"expect": {
		"allow": false, "localization": "none",
		"requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"],
		"reasons_contain": ["DE is not a free destination", "storage that no third party can access is not applied (cautious)"],
	},
}

case_th_personal_with_asean_mcc_is_allowed := {
	"about": "s.29 para 3 notification: the ASEAN MCC is an appropriate safeguard",
	"flow": {"origin": "TH", "destination": "SG", "category": "personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "requires": [], "reasons_contain": ["in force: ASEAN_MCC; allowed"]},
}

case_th_personal_with_eu_scc_is_allowed := {
	"about": "s.29 para 3 notification: the GDPR SCCs are accepted next to the ASEAN MCC",
	"flow": {"origin": "TH", "destination": "US", "category": "personal", "safeguards": ["SCC"]},
	"expect": {"allow": true},
}

case_th_personal_with_pdpc_certified_bcr_is_allowed := {
	"about": "s.29 para 1: BCRs reviewed and certified by the PDPC",
	"flow": {"origin": "TH", "destination": "JP", "category": "personal", "safeguards": ["TH_PDPC_BCR"]},
	"expect": {"allow": true},
}

case_th_personal_bcr_not_certified_by_the_pdpc_does_not_count := {
	"about": "BCRs approved elsewhere (code BCR) are not PDPC-certified",
	"flow": {"origin": "TH", "destination": "JP", "category": "personal", "safeguards": ["BCR"]},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"]},
}

case_th_personal_with_informed_consent_is_allowed := {
	"about": "s.28(2): consent after being told of the destination's inadequate protection",
	"flow": {"origin": "TH", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]},
	"expect": {"allow": true},
}

case_th_personal_malaysian_tia_does_not_count := {
	"flow": {"origin": "TH", "destination": "MY", "category": "personal", "safeguards": ["MY_TIA", "TIA"]},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"]},
}

case_th_sensitive_with_asean_mcc_is_allowed := {
	"flow": {"origin": "TH", "destination": "SG", "category": "sensitive_personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "cites": "TH PDPA B.E. 2562 s.26, 28-29"},
}

case_th_sensitive_without_safeguard_is_denied := {
	"flow": {"origin": "TH", "destination": "SG", "category": "sensitive_personal"},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"]},
}

case_th_us_dpf_certification_is_no_thai_route := {
	"about": "recipient flags of other regimes (EU-US DPF, CBPR) are not Thai safeguards",
	"flow": {"origin": "TH", "destination": "US", "category": "personal", "recipient": {"dpf_certified": true, "cbpr_certified": true}},
	"expect": {"allow": false},
}

case_th_anonymisation_is_not_a_recognised_rewrite := {
	"flow": {"origin": "TH", "destination": "US", "category": "sensitive_personal", "transforms_applied": ["anonymized"]},
	"expect": {"allow": false, "reasons_contain": ["anonymisation is not recognised as a category rewrite here"]},
}

case_th_domestic_core_is_allowed := {
	"flow": {"origin": "TH", "destination": "TH", "category": "core"},
	"expect": {"allow": true},
}
