# METADATA
# title: Table-driven source rules
# description: |
#   Finds the regime that governs the origin (data.residency_data.regimes),
#   rewrites the category by the transforms that regime recognises, and
#   evaluates the regime's rule for that category: free destinations
#   (adequacy lists, groups, '*'), a negative list, safeguard alternatives and
#   recipient flags. Rules that tables cannot express name a handler written
#   in Rego (cn.rego, ru.rego, ca.rego, vn.rego).
package residency

_personal_categories := data.residency_data.vocabulary.personal_categories

# Codes of a group, following up to two levels of "group:NAME" nesting.
# Arrays (duplicates allowed), not sets: see _countries in flow.rego.
_group_codes(name) := array.concat(
	[c |
		some item in object.get(data.residency_data.groups, name, [])
		some c in _item_codes0(item)
	],
	[c |
		some item in object.get(data.residency_data.groups, name, [])
		startswith(item, "group:")
		some sub in object.get(data.residency_data.groups, trim_prefix(item, "group:"), [])
		some c in _item_codes0(sub)
	],
)

_item_codes0(item) := [item] if {
	not startswith(item, "group:")
} else := [c |
	some c in object.get(data.residency_data.groups, trim_prefix(item, "group:"), [])
	not startswith(c, "group:")
]

# Codes named by a list of plain entries (ISO codes and "group:NAME").
_entry_codes(entries) := array.concat(
	[e |
		some e in entries
		is_string(e)
		not startswith(e, "group:")
	],
	[c |
		some e in entries
		is_string(e)
		startswith(e, "group:")
		some c in _group_codes(trim_prefix(e, "group:"))
	],
)

_regime_ids(origin) := [rid |
	some rid in object.keys(data.residency_data.regimes)
	members := object.get(data.residency_data.regimes, [rid, "members"], [])
	is_array(members)
	_member(origin, members)
]

_member(origin, members) if origin in members

_member(origin, members) if {
	some m in members
	startswith(m, "group:")
	origin in _group_codes(trim_prefix(m, "group:"))
}

# rego-cpp 1.x: binding a large data object to a variable, or indexing it with
# a variable, copies it (milliseconds); object.get with a path does not.
_regime_name(rid) := object.get(data.residency_data.regimes, [rid, "name"], rid)

_category_rule(rid, cat) := object.get(data.residency_data.regimes, [rid, "categories", cat], null)

# METADATA
# title: source findings
# description: The origin's own rule for the (rewritten) category, plus entity,
#   purpose and volume rules of the same regime.
_source_findings(f) := _source_findings_for(f, _regime_ids(f.origin))

# An origin no regime names is governed by the regime marked "unlisted": true (regimes.json), when there
# is one, else denied. The regime's rules read f.origin like any other.
_source_findings_for(f, ids) := _regime_findings(f, _unlisted_regime) if {
	count(ids) == 0
	is_string(_unlisted_regime)
} else := [_deny_hard("none", concat("", [
	"No residency rule is modelled for origin ", f.origin,
	"; default deny",
]))] if {
	count(ids) == 0
} else := _regime_findings(f, sort(ids)[0])

_unlisted_regime := ids[0] if {
	ids := sort([rid |
		some rid in object.keys(data.residency_data.regimes)
		object.get(data.residency_data.regimes, [rid, "unlisted"], false) == true
	])
}

_regime_findings(f, rid) := fs if {
	ec := _effective_category(f, rid)
	fs := array.concat(
		array.concat(_transform_findings(f, rid, ec), _category_findings(f, rid, ec)),
		array.concat(_override_findings(f, rid), _volume_findings(f, rid, ec)),
	)
}

# Category rewrite by the transforms this regime recognises (anonymised
# personal data is machine data for EU, UK and CN; never for RU or the DOJ
# overlay). Pseudonymisation never changes the category.
_effective_category(f, rid) := to if {
	tos := [t.to |
		some name in f.transforms
		t := object.get(data.residency_data.transforms, name, null)
		is_object(t)
		f.category in t.from
		rid in t.valid_for
		is_string(t.to)
	]
	to := sort(tos)[0]
} else := f.category

_transform_findings(f, rid, ec) := [_info(concat("", [
	object.get(data.residency_data.transforms, ["anonymized", "cite", rid], rid),
	": anonymised ", f.category, " data is not personal data and is treated as ", ec,
]))] if {
	ec != f.category
} else := [_info(concat("", [
	_regime_name(rid), ": anonymisation is not recognised as a category rewrite here (unconfirmed, cautious); the data stays ",
	f.category,
]))] if {
	"anonymized" in f.transforms
	f.category in _personal_categories
} else := []

_info(reason) := _finding(true, "none", [], reason)

_category_findings(f, rid, ec) := _rule_findings(f, rid, ec, _category_rule(rid, ec))

_rule_findings(f, rid, ec, rule) := [_deny_hard("none", concat("", [
	object.get(data.residency_data.regimes, [rid, "law"], _regime_name(rid)),
	": the ", _regime_name(rid), " rule table has no rule for category ", ec,
	" from this origin; default deny (cautious) until one is added to data/regimes.json",
]))] if {
	not is_object(rule)
} else := _handler_findings(f, rule, ec) if {
	is_string(rule.handler)
} else := [_exempt_finding(f, rule, ex)] if {
	ex := object.get(rule, ["exempt_purposes", f.purpose], null)
	is_object(ex)
	object.get(ex, "confirmed", false) == true
} else := [_generic(f, rule, "")]

# A purpose the rule's law exempts (rule.exempt_purposes.<purpose>): applied only once the exemption is
# confirmed ("confirmed": true); until then the rule applies and its reason names the reported exemption.
_exempt_finding(f, rule, ex) := _finding(true, object.get(rule, "localization", "none"), [], concat("", [
	rule.cite, ": purpose ", f.purpose, " is exempt (", ex.cite, "); allowed",
]))

_exemption_note(f, rule) := concat("", [
	"; purpose ", f.purpose, " is reported exempt (", ex.cite, ") but that is unconfirmed: not applied (cautious)",
]) if {
	ex := object.get(rule, ["exempt_purposes", f.purpose], null)
	is_object(ex)
	object.get(ex, "confirmed", false) != true
} else := ""

_handler_findings(f, rule, ec) := _cn_personal(f, rule, ec) if {
	rule.handler == "cn_personal"
} else := [_ru_personal(f, rule, "")] if {
	rule.handler == "ru_personal"
} else := [_ca_personal(f, rule)] if {
	rule.handler == "ca_personal"
} else := [_deny_hard("none", concat("", ["unknown rule handler ", rule.handler, "; default deny"]))]

_override_findings(f, rid) := array.concat(
	[_generic(f, rule, "") |
		some flag in object.keys(f.entity)
		f.entity[flag] == true
		rule := object.get(data.residency_data.regimes, [rid, "entity_overrides", flag], null)
		is_object(rule)
	],
	[_generic(f, rule, "") |
		rule := object.get(data.residency_data.regimes, [rid, "purpose_overrides", f.purpose], null)
		is_object(rule)
	],
)

_volume_findings(f, rid, ec) := _vn_volume(f, rid, ec) if {
	object.get(data.residency_data.regimes, [rid, "volume_handler"], "") == "vn_volume"
} else := []

# METADATA
# title: generic rule
# description: |
#   Evaluates one table rule: negative list, then free destinations, then
#   safeguard alternatives in force, then recipient flags; otherwise deny and
#   list the alternatives.
_generic(f, rule, prefix) := object.union(_with_unconfirmed(rule, x), {"basis": _basis(rule, prefix)}) if {
	st := _dest_status(f, object.get(rule, "free_to", []))
	core := _generic_core(f, rule, prefix, st)
	x := object.union(core, {"reason": concat("", [core.reason, _exemption_note(f, rule)])})
}

# The rule's own text without the destination, for domestic decisions.
_basis(rule, prefix) := concat("", [prefix, rule.cite, ": ", object.get(rule, "need", object.get(rule, "free", ""))])

_generic_core(f, rule, prefix, st) := _deny_hard(loc, concat("", [
	prefix, rule.cite, ": ", f.destination,
	" is on the negative list",
])) if {
	loc := object.get(rule, "localization", "none")
	f.destination in _entry_codes(object.get(rule, "deny_to", []))
} else := x if {
	st.free
	x := {
		"allow": true,
		"localization": object.get(rule, "localization", "none"),
		"alternatives": [],
		"transforms": st.transforms,
		"reason": concat("", [prefix, rule.cite, ": ", rule.free, _paren(st.why), "; allowed"]),
	}
} else := _finding(true, object.get(rule, "localization", "none"), [], concat("", [
	prefix, rule.cite, ": ", _dest_why(f, st),
	"; in force: ", concat(" and ", sat),
	"; allowed",
])) if {
	# Every satisfied alternative, in data order: a group holding both SCCs and BCRs gets one decision.
	sat := _satisfied(f, object.get(rule, "alternatives", []))
	count(sat) > 0
} else := _finding(true, object.get(rule, "localization", "none"), [], concat("", [
	prefix, rule.cite, ": ", _dest_why(f, st),
	"; ", concat(" and ", flags), _are(flags), " true; allowed",
])) if {
	flags := [concat("", ["recipient.", flag]) |
		some flag in object.get(rule, "recipient_flags", [])
		f.recipient[flag] == true
	]
	count(flags) > 0
} else := _finding(false, object.get(rule, "localization", "none"), object.get(rule, "alternatives", []), concat("", [
	prefix, rule.cite, ": ", _dest_why(f, st),
	"; ", rule.need,
]))

_are(xs) := " is" if {
	count(xs) == 1
} else := " are"

# The alternatives (sets of safeguard codes) whose every code is in force, each as "A+B".
_satisfied(f, alts) := [concat("+", sort([c | some c in alt])) |
	some alt in alts
	count({c | some c in alt} - f.safeguards) == 0
]

_with_unconfirmed(rule, x) := object.union(x, {"reason": concat("", [x.reason, "; unconfirmed: ", rule.unconfirmed])}) if {
	is_string(rule.unconfirmed)
} else := x

_paren(s) := "" if {
	s == ""
} else := concat("", [" (", s, ")"])

_dest_why(f, st) := st.why if {
	st.why != ""
} else := concat("", [f.destination, " is not a free destination for this data"])

# METADATA
# title: destination status
# description: |
#   Whether the destination is free under a rule's free_to entries, why (or
#   why not), and the transforms an adequacy list demands (e.g. Korea's
#   exclusion of resident registration numbers).
_dest_status(f, entries) := {"free": true, "why": "", "transforms": {}} if {
	"*" in entries
} else := _status_of(_matches(f, entries))

_status_of(ms) := free[0] if {
	free := [m | some m in ms; m.free]
	count(free) > 0
} else := {"free": false, "why": concat("; ", [m.why | some m in ms]), "transforms": {}}

_matches(f, entries) := array.concat(
	[m |
		some e in entries
		startswith(e, "list:")
		name := trim_prefix(e, "list:")
		some item in object.get(data.residency_data.adequacy, [name, "entries"], [])
		m := _item_match(f, item, name)
	],
	[m |
		some e in entries
		not startswith(e, "list:")
		m := _item_match(f, e, "")
	],
)

_list_transforms(name) := object.get(data.residency_data.adequacy, [name, "transforms"], {})

_item_match(f, item, name) := {
	"free": true,
	"why": _listed_why(f.destination, item),
	"transforms": _list_transforms(name),
} if {
	is_string(item)
	f.destination in _entry_codes([item])
}

_item_match(f, item, name) := _object_match(f, item, name) if {
	is_object(item)
	item.c == f.destination
}

_object_match(f, item, name) := {
	"free": count(problems) == 0,
	"why": concat("", [
		f.destination, ": ",
		_or_listed(concat(", ", [x | some x in [object.get(item, "decision", ""), object.get(item, "scope", "")]; x != ""])),
		_problems_text(problems),
	]),
	"transforms": _list_transforms(name),
} if {
	problems := [p | some p in _item_problems(f, item)]
}

_listed_why(dest, item) := concat("", [dest, " is in ", trim_prefix(item, "group:")]) if {
	startswith(item, "group:")
} else := concat("", [dest, " is listed"])

_or_listed(s) := "listed" if {
	s == ""
} else := s

_problems_text(problems) := "" if {
	count(problems) == 0
} else := concat("", ["; does not apply: ", concat("; ", problems)])

_item_problems(f, item) := {p |
	item.unconfirmed == true
	p := concat("", ["unconfirmed (", object.get(item, "note", "not retrieved"), "), treated as not adequate"])
} | {p |
	f.origin in object.get(item, "unconfirmed_for_origins", [])
	p := concat("", [
		"unconfirmed for exporters in ", f.origin, " (",
		object.get(item, "note", "not yet law there"), "), treated as not adequate",
	])
} | {p |
	flag := item.requires_recipient
	not f.recipient[flag] == true
	p := concat("", ["recipient.", flag, " is not true"])
} | {p |
	until := item.until
	# Valid through the whole UTC day `until` (YYYY-MM-DD), expired from the next UTC day on: a decision
	# depends on the UTC date only (the decision cache keys on it). Compared as ISO date strings:
	# rego-cpp 1.5 answers undefined for time.parse_rfc3339_ns of a "...Z" time.
	_utc_today > until
	p := concat("", ["expired on ", until])
}

_utc_today := sprintf("%04d-%02d-%02d", time.date(time.now_ns()))
