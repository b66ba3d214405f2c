# METADATA
# title: Singapore, Japan, Korea, India, Indonesia, Saudi Arabia, Australia, Brazil and Canada tests
package residency_test

import data.residency

test_sg_personal_to_us_needs_contract_bcr_consent_or_cbpr if {
	d := residency.decide({"origin": "SG", "destination": "US", "category": "personal"})
	not d.allow
	d.requires == ["BCR", "CONSENT", "SCC"]
	residency.decide({"origin": "SG", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]}).allow
	residency.decide({"origin": "SG", "destination": "US", "category": "personal", "recipient": {"cbpr_certified": true}}).allow
}

test_sg_machine_and_sensitive if {
	residency.decide({"origin": "SG", "destination": "CN", "category": "machine"}).allow
	not residency.decide({"origin": "SG", "destination": "US", "category": "sensitive_personal"}).allow
}

test_jp_personal_to_eea_allowed_and_to_us_needs_route if {
	residency.decide({"origin": "JP", "destination": "DE", "category": "personal"}).allow
	d := residency.decide({"origin": "JP", "destination": "US", "category": "personal"})
	not d.allow
	d.requires == ["BCR", "CONSENT", "SCC"]
	residency.decide({"origin": "JP", "destination": "US", "category": "sensitive_personal", "recipient": {"cbpr_certified": true}}).allow
}

test_jp_uk_designation_unconfirmed if {
	d := residency.decide({"origin": "JP", "destination": "GB", "category": "personal"})
	not d.allow
	contains(d.reasons[0], "unconfirmed")
}

test_kr_personal_to_eea_allowed_with_field_removals if {
	d := residency.decide({"origin": "KR", "destination": "DE", "category": "personal"})
	d.allow
	d.transforms == {"resident_registration_number": "remove", "credit_information": "remove"}
}

test_kr_personal_to_us_needs_consent if {
	d := residency.decide({"origin": "KR", "destination": "US", "category": "sensitive_personal"})
	not d.allow
	d.requires == ["CONSENT"]
	d.transforms == {}
}

test_in_personal_allowed_with_unconfirmed_negative_list if {
	d := residency.decide({"origin": "IN", "destination": "US", "category": "personal"})
	d.allow
	contains(d.reasons[0], "unconfirmed")
}

test_in_payment_data_in_country_only if {
	d := residency.decide({"origin": "IN", "destination": "SG", "category": "personal", "purpose": "payment_data"})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["STATE_APPROVAL"]
}

test_in_ict_logs_primary_in_country if {
	d := residency.decide({"origin": "IN", "destination": "SG", "category": "machine", "purpose": "ict_system_logs"})
	d.allow
	d.localization == "primary_in_country"
}

test_id_personal_needs_safeguard if {
	d := residency.decide({"origin": "ID", "destination": "SG", "category": "personal"})
	not d.allow
	d.requires == ["BCR", "CONSENT", "SCC"]
}

test_id_public_scope_operator_localises_everything if {
	d := residency.decide({"origin": "ID", "destination": "SG", "category": "machine", "entity": {"public_scope": true}})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["STATE_APPROVAL"]
}

test_sa_personal_needs_bcr_and_risk_assessment if {
	d := residency.decide({"origin": "SA", "destination": "DE", "category": "personal"})
	not d.allow
	d.requires == ["BCR+TIA"]
}

test_sa_cni_operator_unconfirmed_localisation if {
	d := residency.decide({"origin": "SA", "destination": "DE", "category": "machine", "entity": {"cni": true}})
	not d.allow
	d.localization == "in_country_only"
	contains(d.reasons[1], "unconfirmed")
}

test_au_personal_needs_reasonable_steps if {
	d := residency.decide({"origin": "AU", "destination": "US", "category": "personal"})
	not d.allow
	d.requires == ["BCR", "CONSENT", "SCC"]
}

test_br_personal_to_eu_allowed_and_to_us_needs_route if {
	residency.decide({"origin": "BR", "destination": "PT", "category": "personal"}).allow
	d := residency.decide({"origin": "BR", "destination": "US", "category": "personal", "safeguards": ["SCC"]})
	not d.allow
	d.requires == ["BCR", "CONSENT"]
}

test_ca_quebec_is_the_cautious_default if {
	d := residency.decide({"origin": "CA", "destination": "US", "category": "personal"})
	not d.allow
	d.requires == ["BCR+TIA", "SCC+TIA"]
	contains(d.reasons[0], "entity.subdivision not given")
}

test_ca_other_province_pipeda_accountability if {
	d := residency.decide({"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "ON"}})
	d.allow
	contains(d.reasons[0], "PIPEDA")
}

test_machine_allowed_from_every_modelled_origin if {
	origins := ["DE", "GB", "CH", "US", "CN", "RU", "IN", "VN", "SG", "JP", "KR", "BR", "ID", "SA", "AU", "CA"]
	allowed := [o | some o in origins; residency.decide({"origin": o, "destination": "NZ", "category": "machine"}).allow]
	count(allowed) == count(origins)
}

test_state_categories_denied_where_no_rule if {
	origins := ["SG", "JP", "KR", "IN", "ID", "SA", "AU", "BR", "CA"]
	allowed := [o |
		some o in origins
		some cat in ["important", "core"]
		residency.decide({"origin": o, "destination": "DE", "category": cat}).allow
	]
	count(allowed) == 0
}
