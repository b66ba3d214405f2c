# METADATA
# title: Raw processing logic tests
# description: |
#   Where the raw payload of a site may be processed (residency cells), on the
#   fixture world of this package: processing in the country of origin is
#   always allowed, malformed requests are denied. That a category abroad
#   follows the ordinary decision and its localization is checked for a grid
#   of flows under both engines by tests/policy/test_processing.py.
package residency_test.logic

import data.residency

test_processing_in_the_country_of_origin_is_allowed if {
	residency.raw_processing_of({"origin": "AD", "processing_country": "AD", "categories": ["personal", "core"]}).allow
	residency.raw_processing_of({"origin": "DE", "processing_country": "DE", "categories": ["sensitive_personal"]}).allow
}

test_malformed_raw_processing_requests_are_denied if {
	not residency.raw_processing_of({}).allow
	not residency.raw_processing_of({"origin": "DE", "processing_country": "DE", "categories": []}).allow
	not residency.raw_processing_of("DE").allow
}
