# METADATA
# title: Singapore, Japan, Korea, India, Indonesia, Saudi Arabia, Australia, Brazil and Canada decision cases
# description: |
#   Decision cases: one flow each and the decision expected, pinning one fact
#   of data/ (see policy/rego_tests.py). A failing case prints the decision
#   expected and the one obtained.
package residency_test

case_sg_personal_to_us_needs_contract_bcr_consent_or_cbpr_1 := {
	"flow": {"category": "personal", "destination": "US", "origin": "SG"},
	"expect": {"allow": false, "requires": ["ASEAN_MCC", "BCR", "CONSENT", "SCC"]},
}

case_sg_personal_to_us_needs_contract_bcr_consent_or_cbpr_2 := {
	"flow": {"category": "personal", "destination": "US", "origin": "SG", "safeguards": ["CONSENT"]},
	"expect": {"allow": true},
}

case_sg_personal_to_us_needs_contract_bcr_consent_or_cbpr_3 := {
	"flow": {"category": "personal", "destination": "US", "origin": "SG", "recipient": {"cbpr_certified": true}},
	"expect": {"allow": true},
}

case_sg_machine_and_sensitive_1 := {
	"flow": {"category": "machine", "destination": "CN", "origin": "SG"},
	"expect": {"allow": true},
}

case_sg_machine_and_sensitive_2 := {
	"flow": {"category": "sensitive_personal", "destination": "US", "origin": "SG"},
	"expect": {"allow": false},
}

case_jp_personal_to_eea_allowed_and_to_us_needs_route_1 := {
	"flow": {"category": "personal", "destination": "DE", "origin": "JP"},
	"expect": {"allow": true},
}

case_jp_personal_to_eea_allowed_and_to_us_needs_route_2 := {
	"flow": {"category": "personal", "destination": "US", "origin": "JP"},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT", "SCC"]},
}

case_jp_personal_to_eea_allowed_and_to_us_needs_route_3 := {
	"flow": {"category": "sensitive_personal", "destination": "US", "origin": "JP", "recipient": {"cbpr_certified": true}},
	"expect": {"allow": true},
}

case_jp_uk_designation_unconfirmed := {
	"flow": {"category": "personal", "destination": "GB", "origin": "JP"},
	"expect": {"allow": false, "reasons_contain": ["unconfirmed"]},
}

case_kr_personal_to_eea_allowed_with_field_removals := {
	"flow": {"category": "personal", "destination": "DE", "origin": "KR"},
	"expect": {"allow": true, "transforms": {"resident_registration_number": "remove", "credit_information": "remove"}},
}

case_kr_personal_to_us_needs_consent := {
	"flow": {"category": "sensitive_personal", "destination": "US", "origin": "KR"},
	"expect": {"allow": false, "requires": ["CONSENT"], "transforms": {}},
}

case_in_personal_allowed_with_unconfirmed_negative_list := {
	"flow": {"category": "personal", "destination": "US", "origin": "IN"},
	"expect": {"allow": true, "reasons_contain": ["unconfirmed"]},
}

case_in_payment_data_in_country_only := {
	"flow": {"category": "personal", "destination": "SG", "origin": "IN", "purpose": "payment_data"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL"]},
}

case_in_ict_logs_primary_in_country := {
	"flow": {"category": "machine", "destination": "SG", "origin": "IN", "purpose": "ict_system_logs"},
	"expect": {"allow": true, "localization": "primary_in_country"},
}

case_id_personal_needs_safeguard := {
	"flow": {"category": "personal", "destination": "SG", "origin": "ID"},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT", "SCC"]},
}

case_id_public_scope_operator_localises_everything := {
	"flow": {"category": "machine", "destination": "SG", "entity": {"public_scope": true}, "origin": "ID"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL"]},
}

case_sa_personal_needs_bcr_and_risk_assessment := {
	"flow": {"category": "personal", "destination": "DE", "origin": "SA"},
	"expect": {"allow": false, "requires": ["BCR+TIA"]},
}

case_sa_cni_operator_unconfirmed_localisation := {
	"flow": {"category": "machine", "destination": "DE", "entity": {"cni": true}, "origin": "SA"},
	"expect": {"allow": false, "localization": "in_country_only", "reasons_contain": ["unconfirmed"]},
}

case_au_personal_needs_reasonable_steps := {
	"flow": {"category": "personal", "destination": "US", "origin": "AU"},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT", "SCC"]},
}

case_br_personal_to_eu_allowed_and_to_us_needs_route_1 := {
	"flow": {"category": "personal", "destination": "PT", "origin": "BR"},
	"expect": {"allow": true},
}

case_br_personal_to_eu_allowed_and_to_us_needs_route_2 := {
	"flow": {"category": "personal", "destination": "US", "origin": "BR", "safeguards": ["SCC"]},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT"]},
}

case_ca_quebec_is_the_cautious_default := {
	"flow": {"category": "personal", "destination": "US", "origin": "CA"},
	"expect": {"allow": false, "requires": ["BCR+TIA", "SCC+TIA"], "reasons_contain": ["entity.subdivision not given"]},
}

case_ca_other_province_pipeda_accountability := {
	"flow": {"category": "personal", "destination": "US", "entity": {"subdivision": "ON"}, "origin": "CA"},
	"expect": {"allow": true, "reasons_contain": ["PIPEDA"]},
}

case_de_machine_to_nz_allowed := {
	"flow": {"origin": "DE", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_gb_machine_to_nz_allowed := {
	"flow": {"origin": "GB", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_ch_machine_to_nz_allowed := {
	"flow": {"origin": "CH", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_us_machine_to_nz_allowed := {
	"flow": {"origin": "US", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_cn_machine_to_nz_allowed := {
	"flow": {"origin": "CN", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_ru_machine_to_nz_allowed := {
	"flow": {"origin": "RU", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_in_machine_to_nz_allowed := {
	"flow": {"origin": "IN", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_vn_machine_to_nz_allowed := {
	"flow": {"origin": "VN", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_sg_machine_to_nz_allowed := {
	"flow": {"origin": "SG", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_jp_machine_to_nz_allowed := {
	"flow": {"origin": "JP", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_kr_machine_to_nz_allowed := {
	"flow": {"origin": "KR", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_br_machine_to_nz_allowed := {
	"flow": {"origin": "BR", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_id_machine_to_nz_allowed := {
	"flow": {"origin": "ID", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_sa_machine_to_nz_allowed := {
	"flow": {"origin": "SA", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_au_machine_to_nz_allowed := {
	"flow": {"origin": "AU", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_ca_machine_to_nz_allowed := {
	"flow": {"origin": "CA", "destination": "NZ", "category": "machine"},
	"expect": {"allow": true},
}

case_sg_important_has_no_rule := {
	"flow": {"origin": "SG", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_sg_core_has_no_rule := {
	"flow": {"origin": "SG", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_jp_important_has_no_rule := {
	"flow": {"origin": "JP", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_jp_core_has_no_rule := {
	"flow": {"origin": "JP", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_kr_important_has_no_rule := {
	"flow": {"origin": "KR", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_kr_core_has_no_rule := {
	"flow": {"origin": "KR", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_in_important_has_no_rule := {
	"flow": {"origin": "IN", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_in_core_has_no_rule := {
	"flow": {"origin": "IN", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_id_important_has_no_rule := {
	"flow": {"origin": "ID", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_id_core_has_no_rule := {
	"flow": {"origin": "ID", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_sa_important_has_no_rule := {
	"flow": {"origin": "SA", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_sa_core_has_no_rule := {
	"flow": {"origin": "SA", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_au_important_has_no_rule := {
	"flow": {"origin": "AU", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_au_core_has_no_rule := {
	"flow": {"origin": "AU", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_br_important_has_no_rule := {
	"flow": {"origin": "BR", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_br_core_has_no_rule := {
	"flow": {"origin": "BR", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_ca_important_has_no_rule := {
	"flow": {"origin": "CA", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "requires": []},
}

case_ca_core_has_no_rule := {
	"flow": {"origin": "CA", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "requires": []},
}

case_sg_personal_with_asean_mcc_is_allowed := {
	"about": "PDPR 2021 reg 11(1)(b), (2) and the PDPC's guidance on the ASEAN MCC",
	"flow": {"origin": "SG", "destination": "US", "category": "personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": true, "reasons_contain": ["in force: ASEAN_MCC; allowed"]},
}

case_id_asean_mcc_is_not_confirmed_as_a_safeguard := {
	"about": "no Indonesian authority or implementing regulation has said so: not accepted (cautious)",
	"flow": {"origin": "ID", "destination": "SG", "category": "personal", "safeguards": ["ASEAN_MCC"]},
	"expect": {"allow": false, "requires": ["BCR", "CONSENT", "SCC"]},
}
