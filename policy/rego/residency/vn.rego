# METADATA
# title: Vietnam, volume classification
# description: |
#   Law on Data 60/2024/QH15 and Decision 20/2025/QD-TTg classify undisclosed
#   citizen data by volume: 100,000-999,999 citizens (basic) or 10,000-99,999
#   (sensitive) is important; 1,000,000+ basic or 100,000+ sensitive is core.
#   A personal flow over those volumes also gets the important or core rule.
package residency

# Decision 20/2025 sets no counting window that this policy could confirm (unconfirmed): the counts are
# the preceding 12 months, the longest window the platform measures (cautious: never below year-to-date).
_vn_class(f) := "core" if {
	f.individuals_12m >= data.residency_data.thresholds.VN.core_basic_min
} else := "core" if {
	f.sensitive_individuals_12m >= data.residency_data.thresholds.VN.core_sensitive_min
} else := "important" if {
	f.individuals_12m >= data.residency_data.thresholds.VN.important_basic_min
} else := "important" if {
	f.sensitive_individuals_12m >= data.residency_data.thresholds.VN.important_sensitive_min
} else := ""

_vn_volume(f, rid, ec) := [_generic(f, _category_rule(rid, cls), concat("", [
	"VN Decision 20/2025/QD-TTg: data of ",
	format_int(f.individuals_12m, 10), " citizens (",
	format_int(f.sensitive_individuals_12m, 10), " sensitive) in the preceding 12 months is classified ", cls,
	" (the counting window is unconfirmed: the longest one measured is used); ",
]))] if {
	ec in _personal_categories
	cls := _vn_class(f)
	cls != ""
} else := []
