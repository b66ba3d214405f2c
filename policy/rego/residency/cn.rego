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
_cn_exempt_article(f) := object.get(data.residency_data.thresholds, ["CN", "exempt_purposes", f.purpose, "article"], null)

# Art 5(1)-(3): the purpose is exempt for this category (thresholds.CN.exempt_purposes.<purpose>.categories).
_cn_exempt_purpose(f, ec) if {
	is_string(_cn_exempt_article(f))
	ec in object.get(data.residency_data.thresholds, ["CN", "exempt_purposes", f.purpose, "categories"], [])
}

# A sensitive flow is at least one sensitive individual even if the counter
# was not supplied.
_cn_sensitive_count(f, ec) := _larger(f.sensitive_individuals, 1) if {
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

# Numbers are printed with format_int: rego-cpp's sprintf("%d") is 32-bit (10^18 prints as -1486618624).
_cn_counts_text(f, ec) := concat("", [
	format_int(f.individuals, 10), " individuals and ",
	format_int(_cn_sensitive_count(f, ec), 10), " with sensitive personal information since 1 Jan",
])

_cn_limit(name) := format_int(object.get(data.residency_data.thresholds, ["CN", name], 0), 10)

# A stronger mechanism in force also satisfies a lower tier: the security assessment, the standard
# contract filing and the certification each include the PIPL Art 55 impact assessment
# (thresholds.CN.pipia_note), and a passed security assessment covers what a contract would. So more
# individuals never turn a denied flow into an allowed one.
_cn_exempt_accepts := [["TIA"], ["CN_STANDARD_CONTRACT"], ["CN_CERTIFICATION"], ["CN_SECURITY_ASSESSMENT"]]

_cn_contract_accepts := [["CN_STANDARD_CONTRACT"], ["CN_CERTIFICATION"], ["CN_SECURITY_ASSESSMENT"]]

# METADATA
# title: CN tier
# description: |
#   The single CN tier that applies, as {localization, alternatives (what
#   `requires` names), accepted (what allows the flow), reason}.
_cn_tier(f, ec) := {
	"localization": "primary_in_country",
	"alternatives": [["TIA"]],
	"accepted": _cn_exempt_accepts,
	"reason": concat("", [
		"CN ", _cn_exempt_article(f), "; PIPL Art 40; CSL Art 37: purpose ", f.purpose,
		" is exempt from security assessment, standard contract and certification, for a CIIO too (Art 5(1)-(3) name every data handler; only Art 5(4) excludes CIIOs), but a CIIO must still store personal information in China; PIPL Art 55 impact assessment (TIA) still required",
	]),
} if {
	f.entity.ciio == true
	_cn_exempt_purpose(f, ec)
} else := {
	"localization": "primary_in_country",
	"alternatives": [["CN_SECURITY_ASSESSMENT"]],
	"accepted": [["CN_SECURITY_ASSESSMENT"]],
	"reason": "CN PIPL Art 40; CSL Art 37; CAC 2024 Provisions Art 7(1): a CIIO must store personal information in China and needs a CAC security assessment to export it",
} if {
	f.entity.ciio == true
} else := {
	"localization": "none",
	"alternatives": [["TIA"]],
	"accepted": _cn_exempt_accepts,
	"reason": concat("", [
		"CN ", _cn_exempt_article(f),
		": purpose ", f.purpose,
		" is exempt from security assessment, standard contract and certification; PIPL Art 55 impact assessment (TIA) still required",
	]),
} if {
	_cn_exempt_purpose(f, ec)
} else := {
	"localization": "primary_in_country",
	"alternatives": [["CN_SECURITY_ASSESSMENT"]],
	"accepted": [["CN_SECURITY_ASSESSMENT"]],
	"reason": concat("", [
		"CN PIPL Art 40; CAC 2024 Provisions Art 7(2): ", _cn_counts_text(f, ec),
		" reach ", _cn_limit("assessment_individuals_min"), " individuals or ",
		_cn_limit("assessment_sensitive_min"), " sensitive",
		", so the data must be stored in China and needs a CAC security assessment (boundary: the Chinese text's 'or more' includes the number, so exactly 1,000,000 or 10,000 sensitive falls here; cautious)",
	]),
} if {
	_cn_assessment_volume(f, ec)
} else := {
	"localization": "none",
	"alternatives": [["CN_STANDARD_CONTRACT"], ["CN_CERTIFICATION"]],
	"accepted": _cn_contract_accepts,
	"reason": concat("", [
		"CN PIPL Art 38; CAC 2024 Provisions Art 8: ", _cn_counts_text(f, ec),
		" (from ", _cn_limit("contract_individuals_min"), " and below ", _cn_limit("assessment_individuals_min"),
		" individuals, or 1 to ", format_int(data.residency_data.thresholds.CN.assessment_sensitive_min - 1, 10),
		" sensitive)",
		" need the CAC standard contract, filed, or PI protection certification (CAC/SAMR Order 20); boundary: exactly 100,000 falls here, not under the Art 5(4) '<100,000' exemption",
	]),
} if {
	_cn_contract_volume(f, ec)
} else := {
	"localization": "none",
	"alternatives": [["TIA"]],
	"accepted": _cn_exempt_accepts,
	"reason": concat("", [
		"CN CAC 2024 Provisions Art 5(4): a non-CIIO exporting ", _cn_counts_text(f, ec),
		" (below ", _cn_limit("exempt_individuals_below"), ", none sensitive)",
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
	allowed := _any_in_force(_cn_with_consent(f, tier.accepted), f.safeguards)
}

_any_in_force(alts, safeguards) := true if {
	some a in alts
	count({c | some c in a} - safeguards) == 0
} else := false

_outcome(allowed) := "; in force; allowed" if {
	allowed == true
} else := "; not in force"
