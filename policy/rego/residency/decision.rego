# METADATA
# title: Residency decision
# description: |
#   Decides, for one flow (one category of data from an origin country to a
#   destination country), whether it may be stored at the destination, with
#   what localisation, which safeguards would make a denied flow allowed, the
#   transforms demanded and the reasons, each citing law and article.
#   Evaluation order: source-jurisdiction rule,
#   then data-subject overlays, then destination overlays. The most
#   restrictive finding wins and the default is deny.
#   Rules read the flow only through function arguments, never `input`
#   directly, so the Rego tests call `decide(flow)` instead of using
#   `with input as` (which crashes rego-cpp 1.x when the rule queried depends
#   on other rules); see policy/README.md.
package residency

# METADATA
# title: decision
# description: |
#   The one document callers query (POST /v1/data/residency/decision on OPA,
#   data.residency.decision in regopy). Every field is always defined:
#   allow, localization, requires, transforms, reasons, policy_revision.
# entrypoint: true
decision := decide(input)

# METADATA
# title: decide
# description: |
#   The decision for a raw flow object (the input contract). Total: any JSON
#   value gives a decision; malformed input gives allow false with a reason.
decide(raw) := _decision(f, _findings(f)) if {
	f := _flow(raw)
}

_decision(f, fs) := {
	"allow": allow,
	"localization": _localization(fs),
	"requires": _requires_if(allow, f, fs),
	"transforms": _transforms_if(allow, fs),
	"reasons": _reasons(f, fs),
	"policy_revision": _revision,
} if {
	allow := _allowed(f, fs)
}

# The policy cannot hash its own files: the engine that loads them injects the
# revision as data.residency_meta.revision (see policy/README.md).
_revision := r if {
	r := data.residency_meta.revision
	is_string(r)
} else := "unset"

_domestic(f) if {
	count(f.problems) == 0
	f.origin == f.destination
}

_denials(fs) := [x | some x in fs; not x.allow]

_allowed(f, fs) := true if {
	_domestic(f)
} else := true if {
	count(f.problems) == 0
	count(_denials(fs)) == 0
	count(fs) > 0
} else := false

# Every function returns one value whatever the data: where several candidates qualify, the first in a
# sorted list is taken, never `some x in ...` as the value of a function (OPA stops with
# eval_conflict_error when two satisfied candidates give two values).
# The highest-ranked localisation of any finding. Ranks are compared with >, not max(): rego-cpp 1.5's max
# compares numbers as text.
_localization(fs) := loc if {
	ranks := data.residency_data.vocabulary.localization_rank
	found := [x.localization | some x in fs; is_number(object.get(ranks, x.localization, null))]
	tops := sort([l |
		some l in found
		not _outranked(ranks, l, found)
	])
	loc := tops[0]
} else := "none"

_outranked(ranks, l, found) if {
	some other in found
	ranks[other] > ranks[l]
}

# When two findings demand different transforms of the same field, the first in sorted order is kept
# ("remove" before "pseudonymize").
_transforms_if(allow, fs) := {k: v |
	some k in {key | some x in fs; some key in object.keys(x.transforms)}
	v := sort([t | some x in fs; t := x.transforms[k]])[0]
} if {
	allow == true
} else := {}

_reasons(f, fs) := array.concat(
	[concat("", ["Domestic flow: origin and destination are both ", f.origin, "; no cross-border transfer rule applies"])],
	[concat("", ["Localisation ", x.localization, ": ", object.get(x, "basis", x.reason)]) |
		some x in fs
		x.localization != "none"
	],
) if {
	_domestic(f)
} else := [x.reason | some x in fs]

# `requires`: the alternatives that would make a denied flow allowed. An
# alternative is one safeguard code, or several joined by "+" when all are
# needed (e.g. "SCC+TIA"). Codes already in force are left out. If any denial
# can be cured by no safeguard, requires is empty.
_requires_if(allow, f, fs) := [] if {
	allow == true
} else := [] if {
	some x in _denials(fs)
	count(x.alternatives) == 0
} else := _minimal(_product(f, _denials(fs)))

_alts_at(ds, i) := ds[i].alternatives if {
	i < count(ds)
} else := [[]]

# Cartesian product over up to six denials: one alternative from each.
_product(f, ds) := {missing |
	some a0 in _alts_at(ds, 0)
	some a1 in _alts_at(ds, 1)
	some a2 in _alts_at(ds, 2)
	some a3 in _alts_at(ds, 3)
	some a4 in _alts_at(ds, 4)
	some a5 in _alts_at(ds, 5)
	codes := {c | some c in array.concat(array.concat(array.concat(a0, a1), array.concat(a2, a3)), array.concat(a4, a5))}
	missing := codes - f.safeguards
	count(missing) > 0
}

_minimal(alts) := sort([concat("+", sort([c | some c in a])) |
	some a in alts
	not _has_smaller(a, alts)
])

_has_smaller(a, alts) if {
	some b in alts
	count(b) < count(a)
	count(b - a) == 0
}

# METADATA
# title: findings
# description: |
#   Every finding is an object {allow, localization, alternatives, transforms,
#   reason}. Source rules come first, then subject overlays, then destination
#   overlays.
_findings(f) := [_problem_finding(p) | some p in f.problems] if {
	count(f.problems) > 0
} else := array.concat(
	array.concat(_source_findings(f), _subject_findings(f)),
	array.concat(_destination_findings(f), _lapsed_findings(f)),
)

# A safeguard that lapsed (or has no date where its validity needs one) is left out of the flow's safeguards
# (flow.rego _in_force); this says why, without deciding anything itself.
_lapsed_findings(f) := [_info(f.lapsed[c]) | some c in sort(object.keys(f.lapsed))]

_problem_finding(p) := _deny_hard("none", concat("", ["Input rejected: ", p, "; default deny"]))

_finding(allow, loc, alts, reason) := {
	"allow": allow,
	"localization": loc,
	"alternatives": alts,
	"transforms": {},
	"reason": reason,
}

_deny_hard(loc, reason) := _finding(false, loc, [], reason)

# METADATA
# title: allow
# description: |
#   Convenience for OPA callers that only need the verdict. Beware: rego-cpp
#   answers "undefined" for a rule that only takes its default value when it
#   is queried alone; query `decision`, whose fields are always defined.
default allow := false

allow if decision.allow == true
