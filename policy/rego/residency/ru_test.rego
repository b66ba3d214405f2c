# METADATA
# title: Russia tests, origin rule and citizenship overlay
package residency_test

import data.residency

test_ru_machine_allowed if {
	d := residency.decide({"origin": "RU", "destination": "CN", "category": "machine"})
	d.allow
	d.localization == "none"
}

test_ru_personal_primary_in_country_and_rkn_notification if {
	d := residency.decide({"origin": "RU", "destination": "CN", "category": "personal"})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["CONSENT+RU_RKN_NOTIFIED"]
	contains(d.reasons[0], "Art 18(5)")
	contains(d.reasons[0], "Roskomnadzor must be notified")
}

# Convention 108 parties are adequate under Art 12, but Draft Law 951518-8 would end that and its
# status is unconfirmed: adequacy.json RU_ADEQ.unconfirmed_entries makes the policy take the cautious
# side (consent as well as notification) and say so.
test_ru_convention_108_adequacy_unconfirmed_needs_consent_too if {
	d := residency.decide({"origin": "RU", "destination": "DE", "category": "personal"})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["CONSENT+RU_RKN_NOTIFIED"]
	contains(d.reasons[0], "Draft Law 951518-8")
	contains(d.reasons[0], "treated as not adequate (cautious)")
}

test_ru_personal_with_notification_and_consent_allowed if {
	d := residency.decide({
		"origin": "RU", "destination": "DE", "category": "personal",
		"safeguards": ["RU_RKN_NOTIFIED", "CONSENT"],
	})
	d.allow
	d.localization == "primary_in_country"
	not residency.decide({"origin": "RU", "destination": "DE", "category": "personal", "safeguards": ["RU_RKN_NOTIFIED"]}).allow
}

test_ru_personal_to_non_adequate_needs_consent_too if {
	d := residency.decide({"origin": "RU", "destination": "CN", "category": "sensitive_personal"})
	not d.allow
	d.requires == ["CONSENT+RU_RKN_NOTIFIED"]
	residency.decide({"origin": "RU", "destination": "CN", "category": "sensitive_personal", "safeguards": ["CONSENT", "RU_RKN_NOTIFIED"]}).allow
}

test_ru_anonymisation_is_not_a_rewrite if {
	d := residency.decide({"origin": "RU", "destination": "DE", "category": "personal", "transforms_applied": ["anonymized"]})
	not d.allow
	contains(d.reasons[0], "not recognised")
}

test_ru_important_core_no_rule if {
	not residency.decide({"origin": "RU", "destination": "DE", "category": "important"}).allow
	not residency.decide({"origin": "RU", "destination": "DE", "category": "core"}).allow
}

test_ru_citizen_overlay_on_eu_flow if {
	d := residency.decide({
		"origin": "DE", "destination": "FR", "category": "personal",
		"subject": {"citizenship": "RU"},
	})
	not d.allow
	d.localization == "primary_in_country"
	d.requires == ["CONSENT+RU_RKN_NOTIFIED"]
	startswith(d.reasons[1], "Subject overlay (citizenship RU)")
}

test_ru_citizen_overlay_satisfied_by_storing_in_russia if {
	d := residency.decide({
		"origin": "DE", "destination": "RU", "category": "personal",
		"safeguards": ["SCC", "TIA"], "subject": {"citizenship": "RU"},
	})
	d.allow
	d.localization == "primary_in_country"
}

test_ru_citizen_overlay_ignores_machine_data if {
	d := residency.decide({"origin": "DE", "destination": "US", "category": "machine", "subject": {"citizenship": "RU"}})
	d.allow
	d.localization == "none"
}
