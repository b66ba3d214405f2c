# METADATA
# title: China tests, including the CAC 2024 Provisions volume boundaries
package residency_test

import data.residency

_cn(extra) := residency.decide(object.union({"origin": "CN", "destination": "DE", "category": "personal"}, extra))

test_cn_machine_to_us_and_de_allowed_art3 if {
	some dest in ["US", "DE"]
	d := residency.decide({"origin": "CN", "destination": dest, "category": "machine"})
	d.allow
	contains(d.reasons[0], "Art 3")
}

test_cn_machine_to_us_allowed if {
	residency.decide({"origin": "CN", "destination": "US", "category": "machine"}).allow
}

test_cn_ciio_personal_denied_to_de_us_sg if {
	results := [d |
		some dest in ["DE", "US", "SG"]
		d := residency.decide({"origin": "CN", "destination": dest, "category": "personal", "entity": {"ciio": true}})
	]
	count(results) == 3
	every d in results {
		not d.allow
		d.localization == "primary_in_country"
		d.requires == ["CN_SECURITY_ASSESSMENT"]
		contains(d.reasons[0], "PIPL Art 40")
		contains(d.reasons[0], "PIPL Art 39")
	}
}

test_cn_ciio_with_assessment_allowed_but_localised if {
	d := _cn({"entity": {"ciio": true}, "safeguards": ["CN_SECURITY_ASSESSMENT"]})
	d.allow
	d.localization == "primary_in_country"
}

test_cn_ciio_consent_alone_is_not_enough if {
	d := _cn({"entity": {"ciio": true}, "safeguards": ["CONSENT", "CN_STANDARD_CONTRACT"]})
	not d.allow
	d.requires == ["CN_SECURITY_ASSESSMENT"]
}

test_cn_ciio_hr_purpose_not_exempt if {
	d := _cn({"entity": {"ciio": true}, "purpose": "hr_management"})
	not d.allow
	d.requires == ["CN_SECURITY_ASSESSMENT"]
}

test_cn_small_volume_exempt_needs_pipia if {
	d := _cn({"volume": {"individuals_ytd": 99999}})
	not d.allow
	d.requires == ["TIA"]
	contains(d.reasons[0], "Art 5(4)")
	_cn({"volume": {"individuals_ytd": 99999}, "safeguards": ["TIA"]}).allow
}

test_cn_boundary_exactly_100000_is_art8 if {
	d := _cn({"volume": {"individuals_ytd": 100000}})
	not d.allow
	d.localization == "none"
	d.requires == ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"]
	contains(d.reasons[0], "Art 8")
	contains(d.reasons[0], "exactly 100,000")
}

test_cn_art8_with_standard_contract_allowed if {
	_cn({"volume": {"individuals_ytd": 500000}, "safeguards": ["CN_STANDARD_CONTRACT"]}).allow
	_cn({"volume": {"individuals_ytd": 500000}, "safeguards": ["CN_CERTIFICATION"]}).allow
}

test_cn_boundary_999999_is_art8 if {
	d := _cn({"volume": {"individuals_ytd": 999999}})
	contains(d.reasons[0], "Art 8")
	d.localization == "none"
}

test_cn_boundary_exactly_1000000_is_art7 if {
	d := _cn({"volume": {"individuals_ytd": 1000000}})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["CN_SECURITY_ASSESSMENT"]
	contains(d.reasons[0], "Art 7(2)")
	contains(d.reasons[0], "exactly 1,000,000")
}

test_cn_contract_does_not_cure_art7_volume if {
	not _cn({"volume": {"individuals_ytd": 1000000}, "safeguards": ["CN_STANDARD_CONTRACT", "CN_CERTIFICATION"]}).allow
}

test_cn_sensitive_9999_is_art8 if {
	d := _cn({"category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 9999}})
	contains(d.reasons[0], "Art 8")
	d.localization == "none"
}

test_cn_sensitive_exactly_10000_is_art7 if {
	d := _cn({"category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 10000}})
	not d.allow
	contains(d.reasons[0], "Art 7(2)")
	d.localization == "primary_in_country"
}

test_cn_sensitive_with_zero_counter_is_not_exempt if {
	d := _cn({"category": "sensitive_personal"})
	contains(d.reasons[0], "Art 8")
}

test_cn_hr_purpose_exempt_for_personal if {
	d := _cn({"purpose": "hr_management", "volume": {"individuals_ytd": 5000000}})
	not d.allow
	d.requires == ["TIA"]
	contains(d.reasons[0], "Art 5(2)")
	_cn({"purpose": "hr_management", "safeguards": ["TIA"]}).allow
}

test_cn_hr_purpose_not_applied_to_sensitive if {
	d := _cn({"category": "sensitive_personal", "purpose": "hr_management"})
	contains(d.reasons[0], "Art 8")
}

test_cn_anonymized_personal_is_machine if {
	d := _cn({"transforms_applied": ["anonymized"], "volume": {"individuals_ytd": 5000000}})
	d.allow
	contains(d.reasons[0], "PIPL Art 4")
}

test_cn_important_primary_in_country_and_assessment if {
	d := residency.decide({"origin": "CN", "destination": "DE", "category": "important"})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["CN_SECURITY_ASSESSMENT"]
	residency.decide({"origin": "CN", "destination": "DE", "category": "important", "safeguards": ["CN_SECURITY_ASSESSMENT"]}).allow
}

test_cn_important_not_rewritten_by_anonymisation if {
	not residency.decide({"origin": "CN", "destination": "DE", "category": "important", "transforms_applied": ["anonymized"]}).allow
}

test_cn_core_in_country_only if {
	d := residency.decide({"origin": "CN", "destination": "SG", "category": "core"})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["CN_SECURITY_ASSESSMENT+STATE_APPROVAL"]
	contains(d.reasons[0], "unconfirmed")
}

test_cn_export_to_hong_kong_is_cross_border if {
	not residency.decide({"origin": "CN", "destination": "HK", "category": "important"}).allow
}

test_cn_foreign_authority_request_needs_approval if {
	d := residency.decide({"origin": "CN", "destination": "US", "category": "machine", "purpose": "foreign_authority_request"})
	not d.allow
	d.localization == "in_country_only"
	d.requires == ["STATE_APPROVAL"]
}

test_cn_boundary_99999_with_one_sensitive_is_art8_not_exempt if {
	d := _cn({"category": "personal", "volume": {"individuals_ytd": 99999, "sensitive_individuals_ytd": 1}})
	not d.allow
	d.requires == ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"]
	contains(d.reasons[0], "Art 8")
}

test_cn_boundary_sensitive_10000_wins_over_small_individual_count if {
	d := _cn({"category": "personal", "volume": {"individuals_ytd": 5, "sensitive_individuals_ytd": 10000}})
	d.localization == "primary_in_country"
	d.requires == ["CN_SECURITY_ASSESSMENT"]
}
