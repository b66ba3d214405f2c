# METADATA
# title: Raw processing tests
# description: |
#   Where the raw payload of a site may be processed (residency cells). The
#   facts come from the decision's data; these tests assert the combination:
#   every category allowed with no localization, or processed at home.
package residency_test

import data.residency

_all := ["machine", "personal", "sensitive_personal"]

test_processing_at_home_is_always_allowed if {
	a := residency.raw_processing_of({"origin": "CN", "processing_country": "CN", "categories": ["core", "personal"], "entity": {"ciio": true}})
	a.allow
	a.categories.core.allow
}

test_a_ciio_raw_payload_may_not_be_processed_abroad if {
	a := residency.raw_processing_of({"origin": "CN", "processing_country": "DE", "categories": _all, "entity": {"ciio": true}})
	not a.allow
	a.categories.machine.allow
	not a.categories.personal.allow
	some r in a.reasons
	startswith(r, "personal: ")
}

test_localization_alone_forbids_processing_abroad if {
	# a category that a safeguard would let travel later must still be collected at home first
	d := residency.decide({"origin": "RU", "destination": "DE", "category": "personal"})
	d.localization != "none"
	a := residency.raw_processing_of({"origin": "RU", "processing_country": "DE", "categories": ["personal"]})
	not a.allow
	some r in a.categories.personal.reasons
	contains(r, "must be collected in RU first")
}

test_free_flow_origin_may_be_processed_abroad if {
	a := residency.raw_processing_of({"origin": "US", "processing_country": "DE", "categories": _all})
	a.allow
	a.reasons == ["every category of the raw payload may be processed there"]
}

test_safeguards_in_force_count if {
	without := residency.raw_processing_of({"origin": "VN", "processing_country": "SG", "categories": _all})
	not without.allow
	with_tia := residency.raw_processing_of({"origin": "VN", "processing_country": "SG", "categories": _all, "safeguards": ["VN_TIA_FILED"]})
	with_tia.allow
}

test_malformed_requests_are_denied if {
	not residency.raw_processing_of({}).allow
	not residency.raw_processing_of({"origin": "DE", "processing_country": "DE", "categories": []}).allow
	not residency.raw_processing_of("DE").allow
}
