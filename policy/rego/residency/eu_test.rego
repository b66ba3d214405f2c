# METADATA
# title: EU/EEA, UK and Switzerland decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_eu_machine_to_us_allowed := {
	"flow": {"category": "machine", "destination": "US", "origin": "DE"},
	"expect": {"allow": true, "localization": "none", "reasons_contain": ["Data Act (EU) 2023/2854 Art 32"]},
}

case_eu_personal_to_us_denied_without_dpf_or_safeguards := {
	"flow": {"category": "personal", "destination": "US", "origin": "DE"},
	"expect": {"allow": false, "requires": ["BCR+TIA", "SCC+TIA"], "reasons_contain": ["recipient.dpf_certified is not true"]},
}

case_eu_personal_to_us_allowed_for_dpf_certified_recipient := {
	"flow": {"category": "personal", "destination": "US", "origin": "DE", "recipient": {"dpf_certified": true}},
	"expect": {"allow": true, "reasons_contain": ["(EU) 2023/1795"]},
}

case_eu_personal_to_us_allowed_with_scc_and_tia := {
	"flow": {"category": "personal", "destination": "US", "origin": "DE", "safeguards": ["SCC", "TIA"]},
	"expect": {"allow": true},
}

case_eu_personal_to_us_allowed_with_bcr_and_tia := {
	"flow": {"category": "personal", "destination": "US", "origin": "FR", "safeguards": ["BCR", "TIA"]},
	"expect": {"allow": true},
}

case_eu_personal_scc_without_tia_denied := {
	"flow": {"category": "personal", "destination": "US", "origin": "DE", "safeguards": ["SCC"]},
	"expect": {"allow": false},
}

case_eu_consent_is_not_a_route := {
	"flow": {"category": "personal", "destination": "US", "origin": "DE", "safeguards": ["CONSENT"]},
	"expect": {"allow": false},
}

case_eu_personal_intra_eea_allowed_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "FR"},
	"expect": {"allow": true},
}

case_eu_personal_intra_eea_allowed_2 := {
	"flow": {"category": "sensitive_personal", "destination": "NO", "origin": "DE"},
	"expect": {"allow": true},
}

case_eu_sensitive_to_sg_denied := {
	"flow": {"category": "sensitive_personal", "destination": "SG", "origin": "IT"},
	"expect": {"allow": false, "reasons_contain": ["Art 9"]},
}

case_eu_personal_to_uk_adequate_until_2031 := {
	"flow": {"category": "personal", "destination": "GB", "origin": "DE"},
	"expect": {"allow": true, "reasons_contain": ["renewed 19 Dec 2025"]},
}

case_eu_personal_to_brazil_adequate_for_eu_exporter := {
	"flow": {"category": "personal", "destination": "BR", "origin": "DE"},
	"expect": {"allow": true, "reasons_contain": ["(EU) 2026/179"]},
}

case_eu_personal_to_canada_needs_pipeda_recipient_1 := {
	"flow": {"category": "personal", "destination": "CA", "origin": "DE"},
	"expect": {"allow": false},
}

case_eu_personal_to_canada_needs_pipeda_recipient_2 := {
	"flow": {"category": "personal", "destination": "CA", "origin": "DE", "recipient": {"pipeda": true}},
	"expect": {"allow": true},
}

case_eu_personal_to_japan_needs_appi_recipient_1 := {
	"flow": {"category": "personal", "destination": "JP", "origin": "DE"},
	"expect": {"allow": false},
}

case_eu_personal_to_japan_needs_appi_recipient_2 := {
	"flow": {"category": "personal", "destination": "JP", "origin": "DE", "recipient": {"appi": true}},
	"expect": {"allow": true},
}

case_eu_personal_to_china_denied := {
	"flow": {"category": "personal", "destination": "CN", "origin": "NL"},
	"expect": {"allow": false, "requires": ["BCR+TIA", "SCC+TIA"]},
}

case_eu_anonymized_personal_is_machine := {
	"flow": {"category": "personal", "destination": "CN", "origin": "DE", "transforms_applied": ["anonymized"]},
	"expect": {"allow": true, "reasons_contain": ["GDPR Recital 26"]},
}

case_eu_pseudonymized_stays_personal := {
	"flow": {"category": "personal", "destination": "CN", "origin": "DE", "transforms_applied": ["pseudonymized"]},
	"expect": {"allow": false},
}

case_eu_aggregated_alone_stays_personal := {
	"flow": {"category": "personal", "destination": "CN", "origin": "DE", "transforms_applied": ["aggregated"]},
	"expect": {"allow": false},
}

case_eu_important_and_core_have_no_rule_1 := {
	"flow": {"category": "important", "destination": "US", "origin": "DE"},
	"expect": {"allow": false},
}

case_eu_important_and_core_have_no_rule_2 := {
	"flow": {"category": "core", "destination": "US", "origin": "DE"},
	"expect": {"allow": false},
}

case_uk_machine_allowed := {
	"flow": {"category": "machine", "destination": "CN", "origin": "GB"},
	"expect": {"allow": true},
}

case_uk_personal_to_eea_allowed := {
	"flow": {"category": "personal", "destination": "IE", "origin": "GB"},
	"expect": {"allow": true},
}

case_uk_personal_to_us_needs_uk_extension_1 := {
	"flow": {"category": "personal", "destination": "US", "origin": "GB", "recipient": {"dpf_certified": true}},
	"expect": {"allow": false, "requires": ["BCR+TIA", "TIA+UK_IDTA"]},
}

case_uk_personal_to_us_needs_uk_extension_2 := {
	"flow": {"category": "personal", "destination": "US", "origin": "GB", "recipient": {"uk_extension": true}},
	"expect": {"allow": true},
}

case_uk_personal_to_korea_allowed := {
	"flow": {"category": "personal", "destination": "KR", "origin": "GB"},
	"expect": {"allow": true},
}

case_uk_personal_to_brazil_not_adequate := {
	"flow": {"category": "personal", "destination": "BR", "origin": "GB"},
	"expect": {"allow": false},
}

case_uk_personal_to_faroes_adequate_under_dpa_2018_sch_21 := {
	"about": "UK_ADEQ FO: carried over from EU decision 2010/146/EU (was unconfirmed before the Dec 2026 audit)",
	"flow": {"category": "personal", "destination": "FO", "origin": "GB"},
	"expect": {"allow": true, "requires": [], "reasons_contain": ["2010/146/EU"]},
}

case_uk_sensitive_with_idta_and_tia_allowed := {
	"flow": {"category": "sensitive_personal", "destination": "IN", "origin": "GB", "safeguards": ["UK_IDTA", "TIA"]},
	"expect": {"allow": true},
}

case_uk_important_core_no_rule_1 := {
	"flow": {"category": "important", "destination": "US", "origin": "GB"},
	"expect": {"allow": false},
}

case_uk_important_core_no_rule_2 := {
	"flow": {"category": "core", "destination": "US", "origin": "GB"},
	"expect": {"allow": false},
}

case_ch_machine_allowed := {
	"flow": {"category": "machine", "destination": "US", "origin": "CH"},
	"expect": {"allow": true},
}

case_ch_personal_to_eea_allowed_and_to_us_needs_swiss_dpf_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "CH"},
	"expect": {"allow": true},
}

case_ch_personal_to_eea_allowed_and_to_us_needs_swiss_dpf_2 := {
	"flow": {"category": "personal", "destination": "US", "origin": "CH", "recipient": {"dpf_certified": true}},
	"expect": {"allow": false},
}

case_ch_personal_to_eea_allowed_and_to_us_needs_swiss_dpf_3 := {
	"flow": {"category": "personal", "destination": "US", "origin": "CH", "recipient": {"swiss_dpf_certified": true}},
	"expect": {"allow": true},
}

case_ch_sensitive_to_india_needs_safeguards := {
	"flow": {"category": "sensitive_personal", "destination": "IN", "origin": "CH"},
	"expect": {"allow": false, "requires": ["BCR+TIA", "SCC+TIA"]},
}

case_ch_important_core_no_rule_1 := {
	"flow": {"category": "important", "destination": "DE", "origin": "CH"},
	"expect": {"allow": false},
}

case_ch_important_core_no_rule_2 := {
	"flow": {"category": "core", "destination": "DE", "origin": "CH"},
	"expect": {"allow": false},
}

case_eu_personal_to_brazil_unconfirmed_for_is_exporter := {
	"flow": {"origin": "IS", "destination": "BR", "category": "personal"},
	"expect": {"allow": false, "reasons_contain": ["unconfirmed for exporters in IS"]},
}

case_eu_personal_to_brazil_unconfirmed_for_li_exporter := {
	"flow": {"origin": "LI", "destination": "BR", "category": "personal"},
	"expect": {"allow": false, "reasons_contain": ["unconfirmed for exporters in LI"]},
}

case_eu_personal_to_brazil_unconfirmed_for_no_exporter := {
	"flow": {"origin": "NO", "destination": "BR", "category": "personal"},
	"expect": {"allow": false, "reasons_contain": ["unconfirmed for exporters in NO"]},
}

case_eu_asean_mcc_is_not_an_eu_transfer_tool := {
	"about": "the ASEAN MCC are not the Commission's SCC (2021/914): no Art 46 safeguard",
	"flow": {"origin": "DE", "destination": "MY", "category": "personal", "safeguards": ["ASEAN_MCC", "TIA"]},
	"expect": {"allow": false, "requires": ["BCR", "SCC"]},
}
