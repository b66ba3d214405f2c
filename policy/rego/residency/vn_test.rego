# METADATA
# title: Vietnam tests, PDP law and Law on Data volume classes
package residency_test

import data.residency

test_vn_machine_allowed if {
	residency.decide({"origin": "VN", "destination": "SG", "category": "machine"}).allow
}

test_vn_personal_to_sg_needs_tia_filed if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "personal"})
	not d.allow
	d.requires == ["VN_TIA_FILED"]
	residency.decide({"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"]}).allow
}

test_vn_sensitive_needs_tia_filed if {
	not residency.decide({"origin": "VN", "destination": "JP", "category": "sensitive_personal", "safeguards": ["CONSENT"]}).allow
}

test_vn_important_needs_state_approval if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "important"})
	not d.allow
	d.requires == ["STATE_APPROVAL"]
	residency.decide({"origin": "VN", "destination": "SG", "category": "important", "safeguards": ["STATE_APPROVAL"]}).allow
}

test_vn_core_in_country_only if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "core"})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["STATE_APPROVAL"]
}

test_vn_personal_volume_makes_it_important if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 100000}})
	not d.allow
	d.requires == ["STATE_APPROVAL"]
	contains(d.reasons[1], "classified important")
}

test_vn_personal_volume_below_important_is_personal_only if {
	residency.decide({"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 99999}}).allow
}

test_vn_personal_volume_makes_it_core if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 100000}})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["STATE_APPROVAL+VN_TIA_FILED"]
}

test_vn_boundary_999999_is_important_and_1000000_is_core if {
	important := residency.decide({"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 999999}})
	important.localization == "none"
	important.requires == ["STATE_APPROVAL"]
	contains(important.reasons[1], "classified important")
	core := residency.decide({"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"], "volume": {"individuals_ytd": 1000000}})
	core.localization == "in_country_only"
	contains(core.reasons[1], "classified core")
}

test_vn_boundary_sensitive_exactly_10000_is_important if {
	d := residency.decide({"origin": "VN", "destination": "SG", "category": "sensitive_personal", "safeguards": ["VN_TIA_FILED"], "volume": {"sensitive_individuals_ytd": 10000}})
	not d.allow
	d.localization == "none"
	contains(d.reasons[1], "classified important")
	residency.decide({"origin": "VN", "destination": "SG", "category": "sensitive_personal", "safeguards": ["VN_TIA_FILED"], "volume": {"sensitive_individuals_ytd": 9999}}).allow
}
