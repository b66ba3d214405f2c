# METADATA
# title: Canada, personal information
# description: |
#   PIPEDA has no localisation (accountability, Sch 1 Principle 4.1.3).
#   Quebec's Private Sector Act s.17 (Law 25) needs a privacy impact
#   assessment and a written agreement before personal information leaves
#   Quebec. The ISO code CA does not say the province, so the Quebec rule
#   applies unless entity.subdivision names another one (cautious default).
package residency

_ca_quebec(f) if f.subdivision in {"", "QC"}

_ca_personal(f, _) := _generic(f, {
	"localization": "none",
	"free_to": [],
	"alternatives": [["SCC", "TIA"], ["BCR", "TIA"]],
	"cite": "CA-QC Private Sector Act s.17 (Law 25)",
	"need": concat("", [
		"a privacy impact assessment (TIA) showing adequate protection and a written agreement",
		" (SCC or BCR stand in for it) are needed before personal information leaves Quebec",
		_ca_subdivision_note(f),
	]),
}, "") if {
	_ca_quebec(f)
} else := _generic(f, {
	"localization": "none",
	"free_to": ["*"],
	"cite": "CA PIPEDA Sch 1 Principle 4.1.3",
	"free": concat("", [
		"no localisation; the organisation stays accountable and must secure comparable protection by contract (entity.subdivision ",
		f.subdivision, ")",
	]),
}, "")

_ca_subdivision_note(f) := " (entity.subdivision not given: the Quebec rule is applied, cautious)" if {
	f.subdivision == ""
} else := ""
