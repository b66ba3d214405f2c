# METADATA
# title: China, personal information export
# description: |
#   PIPL Art 38-40 and the CAC Provisions on Promoting and Regulating
#   Cross-Border Data Flows (22 Mar 2024), tiered in this order: CIIO
#   (Art 7(1), PIPL Art 40), exempt purposes (Art 5(1)-(3)), security
#   assessment volumes (Art 7(2)), standard contract or certification
#   volumes (Art 8), small-volume exemption (Art 5(4)). Limits come from
#   data.residency_data.thresholds.CN. Counters are cumulative since 1 Jan and
#   include the flow being decided.
# related_resources:
#   - ref: ../../data/thresholds.json
package residency


# rego-cpp 1.x: look data up by static path or object.get with a path; binding
# large data objects to variables or indexing them with variables is slow.
_cn_exempt_article(f) := object.get(data.residency_data.thresholds, ["CN", "exempt_purposes", f.purpose], null)

# A sensitive flow is at least one sensitive individual even if the counter
# was not supplied.
_cn_sensitive_count(f, ec) := max([f.sensitive_individuals, 1]) if {
	ec == "sensitive_personal"
} else := f.sensitive_individuals

_cn_consent_needed(f) if {
	data.residency_data.thresholds.CN.consent_gate == true
	not f.purpose in data.residency_data.thresholds.CN.consent_not_needed_for_purposes
}

_cn_with_consent(f, alts) := [array.concat(a, ["CONSENT"]) | some a in alts] if {
	_cn_consent_needed(f)
} else := alts

_cn_consent_text(f) := "; PIPL Art 39 separate consent (CONSENT) is also needed" if {
	_cn_consent_needed(f)
} else := "; PIPL Art 39 notice and separate consent still apply where consent is the legal basis (not gated: thresholds.CN.consent_gate is false)" if {
	data.residency_data.thresholds.CN.consent_gate != true
} else := concat("", ["; no separate consent gate for purpose ", f.purpose, " (PIPL Art 13(1)(2)-(4) basis)"])

_cn_counts_text(f, ec) := concat("", [
	sprintf("%d", [f.individuals]), " individuals and ",
	sprintf("%d", [_cn_sensitive_count(f, ec)]), " with sensitive personal information since 1 Jan",
])

# METADATA
# title: CN tier
# description: The single CN tier that applies, as {localization, alternatives, reason}.
_cn_tier(f, ec) := {
	"localization": "primary_in_country",
	"alternatives": [["CN_SECURITY_ASSESSMENT"]],
	"reason": "CN PIPL Art 40; CSL Art 37; CAC 2024 Provisions Art 7(1): a CIIO must store personal information in China and needs a CAC security assessment to export it (Art 5 purpose exemptions not applied to CIIOs: cautious)",
} if {
	f.entity.ciio == true
} else := {
	"localization": "none",
	"alternatives": [["TIA"]],
	"reason": concat("", [
		"CN ", _cn_exempt_article(f),
		": purpose ", f.purpose,
		" is exempt from security assessment, standard contract and certification; PIPL Art 55 impact assessment (TIA) still required",
	]),
} if {
	is_string(_cn_exempt_article(f))
	ec in data.residency_data.thresholds.CN.exempt_purposes_categories
} else := {
	"localization": "primary_in_country",
	"alternatives": [["CN_SECURITY_ASSESSMENT"]],
	"reason": concat("", [
		"CN PIPL Art 40; CAC 2024 Provisions Art 7(2): ", _cn_counts_text(f, ec),
		sprintf(" reach %d individuals or %d sensitive", [data.residency_data.thresholds.CN.assessment_individuals_min, data.residency_data.thresholds.CN.assessment_sensitive_min]),
		", so the data must be stored in China and needs a CAC security assessment (boundary: the Chinese text's 'or more' includes the number, so exactly 1,000,000 or 10,000 sensitive falls here; cautious)",
	]),
} if {
	_cn_assessment_volume(f, ec)
} else := {
	"localization": "none",
	"alternatives": [["CN_STANDARD_CONTRACT"], ["CN_CERTIFICATION"]],
	"reason": concat("", [
		"CN PIPL Art 38; CAC 2024 Provisions Art 8: ", _cn_counts_text(f, ec),
		sprintf(" (from %d and below %d individuals, or 1 to %d sensitive)", [
			data.residency_data.thresholds.CN.contract_individuals_min, data.residency_data.thresholds.CN.assessment_individuals_min,
			data.residency_data.thresholds.CN.assessment_sensitive_min - 1,
		]),
		" need the CAC standard contract, filed, or PI protection certification (CAC/SAMR Order 20); boundary: exactly 100,000 falls here, not under the Art 5(4) '<100,000' exemption",
	]),
} if {
	_cn_contract_volume(f, ec)
} else := {
	"localization": "none",
	"alternatives": [["TIA"]],
	"reason": concat("", [
		"CN CAC 2024 Provisions Art 5(4): a non-CIIO exporting ", _cn_counts_text(f, ec),
		sprintf(" (below %d, none sensitive)", [data.residency_data.thresholds.CN.exempt_individuals_below]),
		" is exempt from security assessment, standard contract and certification; PIPL Art 55 impact assessment (TIA) still required",
	]),
}

_cn_assessment_volume(f, _) if f.individuals >= data.residency_data.thresholds.CN.assessment_individuals_min

_cn_assessment_volume(f, ec) if _cn_sensitive_count(f, ec) >= data.residency_data.thresholds.CN.assessment_sensitive_min

_cn_contract_volume(f, _) if f.individuals >= data.residency_data.thresholds.CN.contract_individuals_min

_cn_contract_volume(f, ec) if _cn_sensitive_count(f, ec) > 0

# METADATA
# title: CN personal information export
# description: One finding for a personal or sensitive_personal flow out of China.
_cn_personal(f, _, ec) := [_finding(
	allowed,
	tier.localization,
	alts,
	concat("", [tier.reason, _cn_consent_text(f), _outcome(allowed)]),
)] if {
	tier := _cn_tier(f, ec)
	alts := _cn_with_consent(f, tier.alternatives)
	allowed := _any_in_force(alts, f.safeguards)
}

_any_in_force(alts, safeguards) := true if {
	some a in alts
	count({c | some c in a} - safeguards) == 0
} else := false

_outcome(allowed) := "; in force; allowed" if {
	allowed == true
} else := "; not in force"
