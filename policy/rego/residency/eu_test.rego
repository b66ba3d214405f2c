# METADATA
# title: EU/EEA, UK and Switzerland tests
package residency_test

import data.residency

test_eu_machine_to_us_allowed if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "machine"})
	d.allow
	d.localization == "none"
	contains(d.reasons[0], "Data Act (EU) 2023/2854 Art 32")
}

test_eu_personal_to_us_denied_without_dpf_or_safeguards if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "personal"})
	not d.allow
	d.requires == ["BCR+TIA", "SCC+TIA"]
	contains(d.reasons[0], "recipient.dpf_certified is not true")
}

test_eu_personal_to_us_allowed_for_dpf_certified_recipient if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "personal", "recipient": {"dpf_certified": true}})
	d.allow
	contains(d.reasons[0], "(EU) 2023/1795")
}

test_eu_personal_to_us_allowed_with_scc_and_tia if {
	residency.decide({"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC", "TIA"]}).allow
}

test_eu_personal_to_us_allowed_with_bcr_and_tia if {
	residency.decide({"origin": "FR", "destination": "US", "category": "personal", "safeguards": ["BCR", "TIA"]}).allow
}

test_eu_personal_scc_without_tia_denied if {
	not residency.decide({"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC"]}).allow
}

test_eu_consent_is_not_a_route if {
	not residency.decide({"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["CONSENT"]}).allow
}

test_eu_personal_intra_eea_allowed if {
	residency.decide({"origin": "FR", "destination": "DE", "category": "personal"}).allow
	residency.decide({"origin": "DE", "destination": "NO", "category": "sensitive_personal"}).allow
}

test_eu_sensitive_to_sg_denied if {
	d := residency.decide({"origin": "IT", "destination": "SG", "category": "sensitive_personal"})
	not d.allow
	contains(d.reasons[0], "Art 9")
}

test_eu_personal_to_uk_adequate_until_2031 if {
	d := residency.decide({"origin": "DE", "destination": "GB", "category": "personal"})
	d.allow
	contains(d.reasons[0], "renewed 19 Dec 2025")
}

test_eu_personal_to_brazil_adequate_for_eu_exporter if {
	d := residency.decide({"origin": "DE", "destination": "BR", "category": "personal"})
	d.allow
	contains(d.reasons[0], "(EU) 2026/179")
}

test_eu_personal_to_brazil_unconfirmed_for_eea_efta_exporter if {
	some origin in ["IS", "LI", "NO"]
	d := residency.decide({"origin": origin, "destination": "BR", "category": "personal"})
	not d.allow
	contains(d.reasons[0], "unconfirmed for exporters in")
}

test_eu_personal_to_brazil_denied_for_every_eea_efta_exporter if {
	count([o | some o in ["IS", "LI", "NO"]; residency.decide({"origin": o, "destination": "BR", "category": "personal"}).allow]) == 0
}

test_eu_personal_to_canada_needs_pipeda_recipient if {
	not residency.decide({"origin": "DE", "destination": "CA", "category": "personal"}).allow
	residency.decide({"origin": "DE", "destination": "CA", "category": "personal", "recipient": {"pipeda": true}}).allow
}

test_eu_personal_to_japan_needs_appi_recipient if {
	not residency.decide({"origin": "DE", "destination": "JP", "category": "personal"}).allow
	residency.decide({"origin": "DE", "destination": "JP", "category": "personal", "recipient": {"appi": true}}).allow
}

test_eu_personal_to_china_denied if {
	d := residency.decide({"origin": "NL", "destination": "CN", "category": "personal"})
	not d.allow
	d.requires == ["BCR+TIA", "SCC+TIA"]
}

test_eu_anonymized_personal_is_machine if {
	d := residency.decide({"origin": "DE", "destination": "CN", "category": "personal", "transforms_applied": ["anonymized"]})
	d.allow
	contains(d.reasons[0], "GDPR Recital 26")
}

test_eu_pseudonymized_stays_personal if {
	not residency.decide({"origin": "DE", "destination": "CN", "category": "personal", "transforms_applied": ["pseudonymized"]}).allow
}

test_eu_aggregated_alone_stays_personal if {
	not residency.decide({"origin": "DE", "destination": "CN", "category": "personal", "transforms_applied": ["aggregated"]}).allow
}

test_eu_important_and_core_have_no_rule if {
	not residency.decide({"origin": "DE", "destination": "US", "category": "important"}).allow
	not residency.decide({"origin": "DE", "destination": "US", "category": "core"}).allow
}

test_uk_machine_allowed if {
	residency.decide({"origin": "GB", "destination": "CN", "category": "machine"}).allow
}

test_uk_personal_to_eea_allowed if {
	residency.decide({"origin": "GB", "destination": "IE", "category": "personal"}).allow
}

test_uk_personal_to_us_needs_uk_extension if {
	d := residency.decide({"origin": "GB", "destination": "US", "category": "personal", "recipient": {"dpf_certified": true}})
	not d.allow
	d.requires == ["BCR+TIA", "TIA+UK_IDTA"]
	residency.decide({"origin": "GB", "destination": "US", "category": "personal", "recipient": {"uk_extension": true}}).allow
}

test_uk_personal_to_korea_allowed if {
	residency.decide({"origin": "GB", "destination": "KR", "category": "personal"}).allow
}

test_uk_personal_to_brazil_and_faroes_unconfirmed if {
	not residency.decide({"origin": "GB", "destination": "BR", "category": "personal"}).allow
	d := residency.decide({"origin": "GB", "destination": "FO", "category": "personal"})
	not d.allow
	contains(d.reasons[0], "unconfirmed")
}

test_uk_sensitive_with_idta_and_tia_allowed if {
	residency.decide({"origin": "GB", "destination": "IN", "category": "sensitive_personal", "safeguards": ["UK_IDTA", "TIA"]}).allow
}

test_uk_important_core_no_rule if {
	not residency.decide({"origin": "GB", "destination": "US", "category": "important"}).allow
	not residency.decide({"origin": "GB", "destination": "US", "category": "core"}).allow
}

test_ch_machine_allowed if {
	residency.decide({"origin": "CH", "destination": "US", "category": "machine"}).allow
}

test_ch_personal_to_eea_allowed_and_to_us_needs_swiss_dpf if {
	residency.decide({"origin": "CH", "destination": "DE", "category": "personal"}).allow
	not residency.decide({"origin": "CH", "destination": "US", "category": "personal", "recipient": {"dpf_certified": true}}).allow
	residency.decide({"origin": "CH", "destination": "US", "category": "personal", "recipient": {"swiss_dpf_certified": true}}).allow
}

test_ch_sensitive_to_india_needs_safeguards if {
	d := residency.decide({"origin": "CH", "destination": "IN", "category": "sensitive_personal"})
	not d.allow
	d.requires == ["BCR+TIA", "SCC+TIA"]
}

test_ch_important_core_no_rule if {
	not residency.decide({"origin": "CH", "destination": "DE", "category": "important"}).allow
	not residency.decide({"origin": "CH", "destination": "DE", "category": "core"}).allow
}
