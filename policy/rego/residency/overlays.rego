# METADATA
# title: Overlays
# description: |
#   Data-subject overlays (Russian citizens' data wherever collected) and
#   destination overlays (the US DOJ rule on bulk US sensitive personal data
#   going to countries of concern). Both use the declared category: the DOJ
#   rule applies regardless of anonymisation, pseudonymisation or encryption,
#   and depersonalised data stays personal data under 152-FZ.
package residency

# METADATA
# title: subject overlays
# description: Russian citizens' personal data collected outside Russia.
_subject_findings(f) := [_ru_personal(
	f,
	_category_rule("RU", f.category),
	"Subject overlay (citizenship RU): ",
)] if {
	f.citizenship == "RU"
	f.origin != "RU"
	f.category in _personal_categories
} else := []

# METADATA
# title: destination overlays
# description: |
#   US DOJ 28 CFR Part 202 for US persons' data going to a country of
#   concern or to a covered person (28 CFR 202.211, wherever located), on the
#   declared category, and for precise geolocation of US devices whatever the
#   category. Bulk is counted over the preceding 12 months (28 CFR 202.205).
_destination_findings(f) := [_doj_finding(f)] if {
	_doj_applies(f)
} else := []

_doj_applies(f) if {
	_us_person_data(f)
	_doj_counterparty(f)
	_doj_covered_data(f)
}

_us_person_data(f) if f.origin == "US"

_us_person_data(f) if f.citizenship == "US"

# Computed once per query (a rule, not a function call per use).
_us_concern := _group_codes("US_CONCERN")

_doj_counterparty(f) if f.destination in _us_concern

_doj_counterparty(f) if f.recipient.covered_person == true

_doj_covered_data(f) if f.category in _personal_categories

_doj_covered_data(f) if f.precise_geolocation_devices_12m > 0

_doj_limit(name) := object.get(data.residency_data.thresholds, ["US_DOJ", name], 0)

_doj_bulk(f) if f.government_related == true

_doj_bulk(f) if {
	f.category in _personal_categories
	f.individuals_12m > _doj_limit("covered_identifiers_over")
}

_doj_bulk(f) if {
	f.category == "sensitive_personal"
	f.sensitive_individuals_12m > _doj_limit("sensitive_over")
}

_doj_bulk(f) if f.precise_geolocation_devices_12m > _doj_limit("precise_geolocation_devices_over")

_doj_counterparty_text(f) := concat("", ["a country of concern (", f.destination, ")"]) if {
	f.destination in _us_concern
} else := concat("", ["a covered person (recipient.covered_person; 28 CFR 202.211) in ", f.destination])

# Numbers are printed with format_int: rego-cpp's sprintf("%d") is 32-bit.
_doj_counts(f) := concat("", [
	format_int(f.individuals_12m, 10), " US persons (covered identifiers limit ",
	format_int(_doj_limit("covered_identifiers_over"), 10), "), ",
	format_int(f.sensitive_individuals_12m, 10), " with sensitive data (biometric/precise-location limit ",
	format_int(_doj_limit("sensitive_over"), 10), "), ",
	format_int(f.precise_geolocation_devices_12m, 10), " US devices with precise geolocation (limit ",
	format_int(_doj_limit("precise_geolocation_devices_over"), 10), ") in the preceding 12 months (28 CFR 202.205)",
])

_doj_finding(f) := _deny_hard("none", concat("", [
	"US DOJ 28 CFR Part 202 (EO 14117): bulk US sensitive personal data or government-related data may not go to ",
	_doj_counterparty_text(f), ": ", _doj_counts(f),
	"; data brokerage is prohibited and vendor, employment or investment agreements need the CISA security requirements (no safeguard code covers them); applies regardless of anonymisation, pseudonymisation or encryption; no consent exemption; treating badge IDs as covered identifiers is unconfirmed (cautious)",
])) if {
	_doj_bulk(f)
} else := _info(concat("", [
	"US DOJ 28 CFR Part 202 (EO 14117): the counterparty is ", _doj_counterparty_text(f),
	" but ", _doj_counts(f), " are below the bulk thresholds",
]))
