# METADATA
# title: Flow normalisation
# description: |
#   Turns the raw input (the decision contract) into a normalised flow
#   with every field defined, and lists the problems that make it unusable.
#   Missing optional fields take the contract's defaults; values of the wrong
#   type or out of range are problems (deny), never crashes. Every field is
#   read with object.get, never as a bare reference under `not`: a missing
#   key must give the same answer in OPA (where `not f(obj[key])` is
#   undefined for a missing key) and in rego-cpp. Codes are validated as what
#   they are (two ASCII letters; ISO 3166-2 subdivisions), after upper-casing
#   ASCII letters and trimming ASCII spaces only: both engines do exactly
#   that, whereas trim_space and upper treat other Unicode characters (a
#   no-break space, the long s) differently in OPA and rego-cpp, and
#   rego-cpp's regex.match fails on a tab.
package residency

# Arrays, not sets: rego-cpp 1.x builds set and object comprehensions in
# quadratic time (about 25 ms for the 249 country codes), arrays in linear time.
_countries := data.residency_data.countries.codes

_code_re := `^ *[A-Za-z]{2} *$`

_subdivision_re := `^ *([A-Za-z]{2}-)?[A-Za-z0-9]{1,3} *$`

_date_re := `^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`

_count_keys := [
	"individuals_ytd", "sensitive_individuals_ytd",
	"individuals_12m", "sensitive_individuals_12m",
	"precise_geolocation_devices_12m",
]

_root(raw) := raw if {
	is_object(raw)
} else := {}

_sub(raw, key) := v if {
	v := object.get(_root(raw), key, null)
	is_object(v)
} else := {}

_str_or_empty(obj, key) := v if {
	v := object.get(obj, key, null)
	is_string(v)
} else := ""

_ascii_upper(s) := upper(trim(s, " "))

# A valid two-letter code, upper-cased; "" when absent or invalid (then a problem says why).
_code(obj, key) := _ascii_upper(v) if {
	v := object.get(obj, key, null)
	is_string(v)
	regex.match(_code_re, v)
} else := ""

_count(obj, key) := v if {
	v := object.get(obj, key, null)
	_valid_count(v)
} else := 0

_valid_count(v) if {
	is_number(v)
	v >= 0
	v <= data.residency_data.vocabulary.max_count
	floor(v) == v
}

# The larger of two numbers. Not max([a, b]): rego-cpp 1.5's max compares numbers as text
# (max([9999, 10000]) is 9999 there, 10000 in OPA).
_larger(a, b) := a if {
	a >= b
} else := b

_flag(obj, key) := true if {
	object.get(obj, key, null) == true
} else := false

# rego-cpp 1.x treats a bare function argument used as an index inside a
# comprehension (`{s | some s in obj[key]}`) as unbound and iterates every
# key; bind the collection outside the comprehension first.
_str_set(raw, key) := {s | some s in arr; is_string(s)} if {
	arr := object.get(_root(raw), key, null)
	is_array(arr)
} else := set()

# The subdivision part of entity.subdivision ("QC" for "QC" or "CA-QC"); "" when absent or invalid.
_subdivision(raw) := parts[count(parts) - 1] if {
	v := object.get(_sub(raw, "entity"), "subdivision", null)
	is_string(v)
	regex.match(_subdivision_re, v)
	parts := split(_ascii_upper(v), "-")
} else := ""

_volume(raw) := {
	"individuals": ytd,
	"sensitive_individuals": sytd,
	# 28 CFR 202.205 counts "at any point in the preceding 12 months"; the calendar year so far lies within
	# that window, so a 12-month count is never below the year-to-date one.
	"individuals_12m": _larger(ytd, _count(vol, "individuals_12m")),
	"sensitive_individuals_12m": _larger(sytd, _count(vol, "sensitive_individuals_12m")),
	"precise_geolocation_devices_12m": _count(vol, "precise_geolocation_devices_12m"),
} if {
	vol := _sub(raw, "volume")
	ytd := _count(vol, "individuals_ytd")
	sytd := _count(vol, "sensitive_individuals_ytd")
}

_flow(raw) := object.union({
	"problems": _problems(raw),
	"origin": _code(_root(raw), "origin"),
	"destination": _code(_root(raw), "destination"),
	"category": _str_or_empty(_root(raw), "category"),
	"safeguards": _in_force(raw),
	"lapsed": _lapsed(raw),
	"recipient": {k: _flag(_sub(raw, "recipient"), k) | some k in data.residency_data.vocabulary.recipient_flags},
	"entity": {k: _flag(_sub(raw, "entity"), k) | some k in data.residency_data.vocabulary.entity_flags},
	"subdivision": _subdivision(raw),
	"citizenship": _code(_sub(raw, "subject"), "citizenship"),
	"government_related": _flag(_sub(raw, "subject"), "government_related"),
	"purpose": _str_or_empty(_root(raw), "purpose"),
	"transforms": _str_set(raw, "transforms_applied"),
}, _volume(raw))

# METADATA
# title: safeguards in force
# description: |
#   The listed safeguards, less those with a validity (vocabulary.safeguard_validity, e.g. MY_TIA: three
#   years) that have no date in safeguard_dates or whose date is that many years old: a lapsed safeguard is
#   not in force, so `requires` names it again. Dates are compared as ISO strings against the UTC date, like
#   adequacy.json `until`.
_in_force(raw) := {c | some c in listed; not c in lapsed} if {
	listed := _str_set(raw, "safeguards")
	lapsed := {c | some c in object.keys(_lapsed(raw))}
}

# code -> why it is not in force, for each listed safeguard with a validity that lapsed or has no date.
_lapsed(raw) := {c: why |
	some c in listed
	v := object.get(validity, c, null)
	is_object(v)
	why := _lapse(c, v, object.get(dates, c, ""))
} if {
	listed := _str_set(raw, "safeguards")
	validity := object.get(data.residency_data.vocabulary, "safeguard_validity", {})
	dates := _dates(raw)
}

# The valid entries of safeguard_dates (a code -> a YYYY-MM-DD date); others are problems.
_dates(raw) := {k: d |
	some k in object.keys(given)
	d := given[k]
	is_string(d)
	regex.match(_date_re, d)
} if {
	given := _sub(raw, "safeguard_dates")
}

_lapse(c, v, d) := concat("", [
	c, " is not in force: its date (safeguard_dates.", c, ") is needed to know it is less than ",
	format_int(v.years, 10), " years old (", v.cite, ")",
]) if {
	d == ""
} else := concat("", [c, " is dated ", d, ", after today (UTC): not in force yet"]) if {
	d > _utc_today
} else := concat("", [
	c, " of ", d, " lapsed on ", e, " (", v.cite, "): not in force until it is renewed",
]) if {
	e := _anniversary(d, v.years)
	_utc_today >= e
}

# The same day n years later, as an ISO date string (29 Feb stays 29 Feb: string comparison puts it between
# 28 Feb and 1 Mar).
_anniversary(d, n) := concat("", [format_int(to_number(substring(d, 0, 4)) + n, 10), substring(d, 4, 6)])

_problems(raw) := ["the input is not a JSON object"] if {
	not is_object(raw)
} else := sort([p | some p in _field_problems(_root(raw))])

_field_problems(obj) := (((((_required_problems(obj) | _shape_problems(obj)) | _count_problems(obj)) | _list_problems(obj)) | _flag_problems(obj)) | _subject_problems(obj)) | _date_problems(obj)

_required_problems(obj) := {p |
	some key in ["origin", "destination", "category"]
	not is_string(object.get(obj, key, null))
	p := concat("", [key, " is missing or not a string"])
} | {p |
	some key in ["origin", "destination"]
	v := object.get(obj, key, null)
	is_string(v)
	p := _country_problem(key, v)
} | {p |
	cat := object.get(obj, "category", null)
	is_string(cat)
	not cat in data.residency_data.vocabulary.categories
	p := _unknown_category(cat)
}

# A present key with the wrong type, null included (absent keys take the contract's defaults).
_shape_problems(obj) := {p |
	some key in ["safeguards", "transforms_applied"]
	key in object.keys(obj)
	not is_array(obj[key])
	p := concat("", [key, " is not a list"])
} | {p |
	some key in ["recipient", "entity", "subject", "volume", "safeguard_dates"]
	key in object.keys(obj)
	not is_object(obj[key])
	p := concat("", [key, " is not an object"])
} | {p |
	v := object.get(obj, "purpose", null)
	v != null
	not is_string(v)
	p := "purpose is not a string"
}

_count_problems(obj) := {p |
	# `some key, v in vol` would do, but rego-cpp 1.5 reads the comma as a set literal's inside a comprehension.
	vol := _sub(obj, "volume")
	some key in object.keys(vol)
	key in _count_keys
	v := vol[key]
	not _valid_count(v)
	p := concat("", [
		"volume.", key, " is not a whole number from 0 to ",
		format_int(data.residency_data.vocabulary.max_count, 10),
	])
}

_list_problems(obj) := {p |
	arr := object.get(obj, "safeguards", null)
	is_array(arr)
	some v in arr
	not is_string(v)
	p := "safeguards holds a value that is not a string"
} | {p |
	arr := object.get(obj, "transforms_applied", null)
	is_array(arr)
	some v in arr
	not v in data.residency_data.vocabulary.transforms_applied
	p := concat("", [
		"transforms_applied holds an unknown transform (expected ",
		concat(", ", data.residency_data.vocabulary.transforms_applied), ")",
	])
}

_date_problems(obj) := {p |
	given := _sub(obj, "safeguard_dates")
	some k in object.keys(given)
	d := given[k]
	not _valid_date(d)
	p := concat("", ["safeguard_dates.", _key_name(k), " is not a date (YYYY-MM-DD)"])
}

_valid_date(d) if {
	is_string(d)
	regex.match(_date_re, d)
}

# A key echoed in a problem only when it looks like a safeguard code.
_key_name(k) := k if {
	regex.match(`^[A-Z][A-Z0-9_]{0,39}$`, k)
} else := "(a key that is no safeguard code)"

_flag_names := {
	"recipient": data.residency_data.vocabulary.recipient_flags,
	"entity": data.residency_data.vocabulary.entity_flags,
	"subject": ["government_related"],
}

_flag_problems(obj) := {p |
	some key in ["recipient", "entity", "subject"]
	names := _flag_names[key]
	attrs := _sub(obj, key)
	some k in object.keys(attrs)
	k in names
	v := attrs[k]
	not is_boolean(v)
	p := concat("", [key, ".", k, " is not true or false"])
}

_subject_problems(obj) := {p |
	v := object.get(_sub(obj, "subject"), "citizenship", null)
	v != null
	p := _citizenship_problem(v)
} | {p |
	v := object.get(_sub(obj, "entity"), "subdivision", null)
	v != null
	p := _subdivision_problem(obj, v)
}

_country_problem(key, v) := concat("", [key, " is not an ISO 3166-1 alpha-2 country code (two letters A-Z)"]) if {
	not regex.match(_code_re, v)
} else := concat("", ["unknown ", key, " country code ", c, " (not ISO 3166-1 alpha-2)"]) if {
	c := _ascii_upper(v)
	not c in _countries
}

_citizenship_problem(v) := "subject.citizenship is not a string" if {
	not is_string(v)
} else := _country_problem("subject.citizenship", v)

_subdivision_problem(obj, v) := "entity.subdivision is not a string" if {
	not is_string(v)
} else := "entity.subdivision is not an ISO 3166-2 subdivision code (e.g. QC or CA-QC)" if {
	not regex.match(_subdivision_re, v)
} else := concat("", ["entity.subdivision ", u, " is a subdivision of another country than the origin ", o]) if {
	u := _ascii_upper(v)
	contains(u, "-")
	o := _code(obj, "origin")
	not startswith(u, concat("", [o, "-"]))
} else := concat("", ["unknown entity.subdivision ", s, " of ", o, " (ISO 3166-2:", o, ")"]) if {
	o := _code(obj, "origin")
	known := object.get(data.residency_data.subdivisions, ["codes", o], null)
	is_array(known)
	parts := split(_ascii_upper(v), "-")
	s := parts[count(parts) - 1]
	not s in known
}

_unknown_category(cat) := concat("", [
	"unknown category ", cat,
	" (expected machine, personal, sensitive_personal, important or core)",
]) if {
	regex.match(`^[a-z_]{1,40}$`, cat)
} else := "unknown category (expected machine, personal, sensitive_personal, important or core)"
