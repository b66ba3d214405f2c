# METADATA
# title: Raw processing
# description: |
#   May the raw payload of a site be processed (received by a broker, held
#   and split by an ingest) in a given country, before the policy decides
#   where each of its categories may be stored? Answers for a residency cell
#   (docs/cells.md): a site may be served only by a cell in a country where
#   this allows it.
#   The raw payload holds every category listed in the request (the site's
#   device profiles plus those an undeclared field could hold). Each must be
#   allowed from the origin to the processing country by the ordinary
#   decision, AND with localization "none": a primary_in_country or
#   in_country_only localization means the data must be collected in its
#   country first (e.g. 152-FZ Art 18(5); PIPL Art 40, CSL Art 37 for a
#   CIIO), so receiving the raw payload abroad is already the transfer the
#   law restricts. Processing in the country of origin is always allowed.
package residency

# METADATA
# title: raw_processing
# description: |
#   Input: {"origin", "processing_country", "categories": [...], and the
#   optional flow fields of the decision contract (safeguards in force for
#   the processing country, recipient, entity, subject, purpose, volume)}.
#   Output: {"allow", "reasons", "categories": {category: {"allow",
#   "localization", "reasons"}}, "policy_revision"}. Total: malformed input
#   is a deny with a reason.
# entrypoint: true
raw_processing := raw_processing_of(input)

# METADATA
# title: raw_processing_of
# description: The raw-processing answer for a request object (see raw_processing).
raw_processing_of(req) := _raw_answer(per) if {
	is_object(req)
	is_string(req.origin)
	is_string(req.processing_country)
	is_array(req.categories)
	count(req.categories) > 0
	per := {c: _raw_category(req, c) | some c in req.categories}
} else := {
	"allow": false,
	"reasons": ["Input rejected: origin, processing_country and a non-empty categories list are required; default deny"],
	"categories": {},
	"policy_revision": _revision,
}

_raw_answer(per) := {
	"allow": count(_raw_denied(per)) == 0,
	"reasons": _raw_reasons(per),
	"categories": per,
	"policy_revision": _revision,
}

_raw_denied(per) := sort([c | some c in object.keys(per); not per[c].allow])

_raw_reasons(per) := [concat("", [c, ": ", concat("; ", per[c].reasons)]) | some c in _raw_denied(per)] if {
	count(_raw_denied(per)) > 0
} else := ["every category of the raw payload may be processed there"]

_raw_category(req, c) := {
	"allow": true,
	"localization": "none",
	"reasons": [concat("", ["processed in its country of origin (", req.origin, ")"])],
} if {
	req.origin == req.processing_country
} else := {
	"allow": d.allow == true,
	"localization": d.localization,
	"reasons": d.reasons,
} if {
	d := decide(_raw_flow(req, c))
	d.localization == "none"
} else := {
	"allow": false,
	"localization": d.localization,
	"reasons": array.concat(d.reasons, [concat("", [
		"localization ", d.localization, ": ", c, " data must be collected in ", req.origin,
		" first; its raw payload may not be processed in ", req.processing_country,
	])]),
} if {
	d := decide(_raw_flow(req, c))
}

_raw_flow(req, c) := object.union(object.remove(req, ["processing_country", "categories"]), {
	"destination": req.processing_country,
	"category": c,
})
