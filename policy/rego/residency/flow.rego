# METADATA
# title: Flow normalisation
# description: |
#   Turns the raw input (the decision contract, policy/README.md) into a normalised flow
#   with every field defined, and lists the problems that make it unusable.
#   Missing optional fields take the contract's defaults; values of the wrong
#   type are problems (deny), never crashes. Recipient and entity flags that
#   are not `true` count as false (the cautious side: a flag only ever
#   unlocks a route).
package residency

# Arrays, not sets: rego-cpp 1.x builds set and object comprehensions in
# quadratic time (about 25 ms for the 249 country codes), arrays in linear time.
_countries := data.residency_data.countries.codes

_root(raw) := raw if {
	is_object(raw)
} else := {}

_sub(raw, key) := v if {
	v := _root(raw)[key]
	is_object(v)
} else := {}

_str_or_empty(obj, key) := v if {
	v := obj[key]
	is_string(v)
} else := ""

_upper_or_empty(obj, key) := upper(trim_space(_str_or_empty(obj, key)))

_count_or_zero(obj, key) := v if {
	v := obj[key]
	is_number(v)
	v >= 0
} else := 0

_flag(obj, key) := true if {
	obj[key] == true
} else := false

# rego-cpp 1.x treats a bare function argument used as an index inside a
# comprehension (`{s | some s in obj[key]}`) as unbound and iterates every
# key; bind the collection outside the comprehension first.
_str_set(raw, key) := {s | some s in arr; is_string(s)} if {
	arr := _root(raw)[key]
	is_array(arr)
} else := set()

_flow(raw) := {
	"problems": _problems(raw),
	"origin": _upper_or_empty(_root(raw), "origin"),
	"destination": _upper_or_empty(_root(raw), "destination"),
	"category": _str_or_empty(_root(raw), "category"),
	"safeguards": _str_set(raw, "safeguards"),
	"recipient": {k: _flag(_sub(raw, "recipient"), k) | some k in data.residency_data.vocabulary.recipient_flags},
	"entity": {k: _flag(_sub(raw, "entity"), k) | some k in data.residency_data.vocabulary.entity_flags},
	"subdivision": _upper_or_empty(_sub(raw, "entity"), "subdivision"),
	"citizenship": _upper_or_empty(_sub(raw, "subject"), "citizenship"),
	"government_related": _flag(_sub(raw, "subject"), "government_related"),
	"purpose": _str_or_empty(_root(raw), "purpose"),
	"individuals": _count_or_zero(_sub(raw, "volume"), "individuals_ytd"),
	"sensitive_individuals": _count_or_zero(_sub(raw, "volume"), "sensitive_individuals_ytd"),
	"transforms": _str_set(raw, "transforms_applied"),
}

_problems(raw) := ["the input is not a JSON object"] if {
	not is_object(raw)
} else := sort([p | some p in _field_problems(_root(raw))])

_field_problems(obj) := {p |
	some key in ["origin", "destination", "category"]
	not is_string(obj[key])
	p := concat("", [key, " is missing or not a string"])
} | {p |
	some key in ["origin", "destination"]
	is_string(obj[key])
	code := upper(trim_space(obj[key]))
	not code in _countries
	p := _unknown_country(key, code)
} | {p |
	is_string(obj.category)
	not obj.category in data.residency_data.vocabulary.categories
	p := _unknown_category(obj.category)
} | {p |
	some key in ["individuals_ytd", "sensitive_individuals_ytd"]
	v := _sub(obj, "volume")[key]
	not _non_negative_number(v)
	p := concat("", ["volume.", key, " is not a non-negative number"])
} | {p |
	some key in ["safeguards", "transforms_applied"]
	v := obj[key]
	not is_array(v)
	p := concat("", [key, " is not a list"])
}

_non_negative_number(v) if {
	is_number(v)
	v >= 0
}

_unknown_country(key, code) := concat("", ["unknown ", key, " country code ", code, " (not ISO 3166-1 alpha-2)"]) if {
	regex.match(`^[A-Z]{2}$`, code)
} else := concat("", [key, " is not an ISO 3166-1 alpha-2 country code"])

_unknown_category(cat) := concat("", [
	"unknown category ", cat,
	" (expected machine, personal, sensitive_personal, important or core)",
]) if {
	regex.match(`^[a-z_]{1,40}$`, cat)
} else := "unknown category (expected machine, personal, sensitive_personal, important or core)"
