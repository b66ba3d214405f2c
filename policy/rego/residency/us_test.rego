# METADATA
# title: United States tests, including the DOJ 28 CFR Part 202 overlay
package residency_test

import data.residency

test_us_machine_allowed_everywhere if {
	residency.decide({"origin": "US", "destination": "CN", "category": "machine"}).allow
}

test_us_personal_to_de_allowed if {
	d := residency.decide({"origin": "US", "destination": "DE", "category": "personal"})
	d.allow
	d.localization == "none"
}

test_us_sensitive_to_de_allowed if {
	residency.decide({"origin": "US", "destination": "DE", "category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 50000}}).allow
}

test_us_important_core_no_rule if {
	not residency.decide({"origin": "US", "destination": "DE", "category": "important"}).allow
	not residency.decide({"origin": "US", "destination": "DE", "category": "core"}).allow
}

test_doj_personal_below_bulk_threshold_allowed if {
	d := residency.decide({"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_ytd": 100000}})
	d.allow
	contains(d.reasons[1], "below the bulk thresholds")
}

test_doj_personal_over_bulk_threshold_denied if {
	d := residency.decide({"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_ytd": 100001}})
	not d.allow
	d.requires == []
	contains(d.reasons[1], "28 CFR Part 202")
}

test_doj_sensitive_threshold_is_more_than_1000 if {
	residency.decide({"origin": "US", "destination": "RU", "category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 1000}}).allow
	not residency.decide({"origin": "US", "destination": "RU", "category": "sensitive_personal", "volume": {"sensitive_individuals_ytd": 1001}}).allow
}

test_doj_is_transform_blind if {
	d := residency.decide({
		"origin": "US", "destination": "HK", "category": "sensitive_personal",
		"transforms_applied": ["anonymized"], "volume": {"sensitive_individuals_ytd": 5000},
	})
	not d.allow
	contains(d.reasons[2], "regardless of anonymisation")
}

test_doj_no_consent_exemption if {
	not residency.decide({"origin": "US", "destination": "CN", "category": "personal", "safeguards": ["CONSENT", "SCC", "BCR", "TIA"], "volume": {"individuals_ytd": 200000}}).allow
}

test_doj_government_related_has_no_threshold if {
	not residency.decide({"origin": "US", "destination": "VE", "category": "personal", "subject": {"government_related": true}}).allow
}

test_doj_applies_to_us_citizens_data_from_elsewhere if {
	d := residency.decide({
		"origin": "DE", "destination": "CN", "category": "personal", "safeguards": ["SCC", "TIA"],
		"subject": {"citizenship": "US"}, "volume": {"individuals_ytd": 150000},
	})
	not d.allow
	d.requires == []
}

test_doj_not_for_non_concern_destination if {
	residency.decide({"origin": "US", "destination": "SG", "category": "personal", "volume": {"individuals_ytd": 5000000}}).allow
}
