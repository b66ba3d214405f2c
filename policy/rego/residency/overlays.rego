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
# description: US DOJ 28 CFR Part 202 for US persons' data going to a country of concern.
_destination_findings(f) := [_doj_finding(f)] if {
	_doj_applies(f)
} else := []

_doj_applies(f) if {
	_us_person_data(f)
	f.destination in _group_codes("US_CONCERN")
	f.category in _personal_categories
}

_us_person_data(f) if f.origin == "US"

_us_person_data(f) if f.citizenship == "US"

_doj_bulk(f) if f.government_related == true

_doj_bulk(f) if f.individuals > data.residency_data.thresholds.US_DOJ.covered_identifiers_over

_doj_bulk(f) if {
	f.category == "sensitive_personal"
	f.sensitive_individuals > data.residency_data.thresholds.US_DOJ.sensitive_over
}

_doj_counts(f) := concat("", [
	sprintf("%d", [f.individuals]), " US persons (covered identifiers limit ",
	sprintf("%d", [data.residency_data.thresholds.US_DOJ.covered_identifiers_over]), "), ",
	sprintf("%d", [f.sensitive_individuals]), " with sensitive data (biometric/precise-location limit ",
	sprintf("%d", [data.residency_data.thresholds.US_DOJ.sensitive_over]), ")",
])

_doj_finding(f) := _deny_hard("none", concat("", [
	"US DOJ 28 CFR Part 202 (EO 14117): bulk US sensitive personal data or government-related data may not go to a country of concern (",
	f.destination, "): ", _doj_counts(f),
	"; data brokerage is prohibited and vendor, employment or investment agreements need the CISA security requirements (no safeguard code covers them); applies regardless of anonymisation, pseudonymisation or encryption; no consent exemption; treating badge IDs as covered identifiers is unconfirmed (cautious)",
])) if {
	_doj_bulk(f)
} else := _info(concat("", [
	"US DOJ 28 CFR Part 202 (EO 14117): destination ", f.destination,
	" is a country of concern but ", _doj_counts(f),
	" are below the bulk thresholds; the rule counts any 12 months while the counters are year-to-date (unconfirmed: keep them as 12-month counts)",
]))
