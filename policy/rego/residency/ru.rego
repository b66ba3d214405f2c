# METADATA
# title: Russia, personal data
# description: |
#   152-FZ Art 18(5) localisation at collection (foreign databases banned
#   since 1 Jul 2025, 23-FZ) and Art 12 cross-border transfer (Roskomnadzor
#   notification; adequacy = Convention 108 parties + RKN Order 128). Used for
#   origin RU and, as a data-subject overlay, for Russian citizens' data
#   collected elsewhere.
package residency

# An adequacy entry named in RU_ADEQ.unconfirmed_entries (e.g. Convention 108 parties while Draft Law
# 951518-8 is pending) does not count: the cautious side of an unconfirmed fact.
_ru_adequate(f) if {
	some e in data.residency_data.adequacy.RU_ADEQ.entries
	not is_string(object.get(data.residency_data.adequacy, ["RU_ADEQ", "unconfirmed_entries", e], null))
	f.destination in _entry_codes([e])
}

_ru_unconfirmed_notes(f) := [concat("", [trim_prefix(e, "group:"), ", but ", note]) |
	some e in data.residency_data.adequacy.RU_ADEQ.entries
	note := object.get(data.residency_data.adequacy, ["RU_ADEQ", "unconfirmed_entries", e], null)
	is_string(note)
	f.destination in _entry_codes([e])
]

_ru_alternatives(f) := [["RU_RKN_NOTIFIED"]] if {
	_ru_adequate(f)
} else := [["CONSENT", "RU_RKN_NOTIFIED"]]

_ru_transfer_text(f) := concat("", [
	f.destination,
	" is adequate (Convention 108 party or RKN Order 128): Roskomnadzor must be notified before the first transfer",
]) if {
	_ru_adequate(f)
} else := concat("", [
	f.destination,
	" is in ", concat("; ", notes),
	", so it is treated as not adequate (cautious): Roskomnadzor must be notified, the transfer may not start while the notification is under review, and it needs a ground such as written consent",
]) if {
	notes := _ru_unconfirmed_notes(f)
	count(notes) > 0
} else := concat("", [
	f.destination,
	" is not adequate: Roskomnadzor must be notified, the transfer may not start while the notification is under review, and it needs a ground such as written consent",
])

_ru_localization_text := "Russian citizens' personal data must be recorded and stored in databases in Russia at collection (foreign databases banned since 1 Jul 2025, 23-FZ), so an in-Russia primary store comes first"

# METADATA
# title: RU personal data export
# description: One finding; localisation is always primary_in_country (in Russia).
_ru_personal(f, rule, prefix) := object.union(_ru_core(f, rule, prefix), {"basis": concat("", [
	prefix, rule.cite, ": ", _ru_localization_text,
])})

_ru_core(f, rule, prefix) := _finding(true, "primary_in_country", [], concat("", [
	prefix, rule.cite, ": ", _ru_localization_text,
	"; the destination is Russia; allowed",
])) if {
	f.destination == "RU"
} else := _finding(allowed, "primary_in_country", alts, concat("", [
	prefix, rule.cite, ": ", _ru_localization_text, "; ",
	_ru_transfer_text(f), _outcome(allowed),
	"; the stricter reading that also bans mirror databases abroad is unconfirmed",
])) if {
	alts := _ru_alternatives(f)
	allowed := _any_in_force(alts, f.safeguards)
}
