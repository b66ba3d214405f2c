# METADATA
# title: Jurisdiction x category matrix
# description: |
#   One test per jurisdiction that pins the decision for every category
#   (machine, personal, sensitive_personal, important, core) to one foreign
#   destination with no safeguards, no recipient flags and zero counters:
#   allow, localization, requires and the law the first reason cites. The
#   detailed behaviour (safeguards that cure, thresholds, overlays) is in the
#   per-jurisdiction test files; this file shows at a glance what changes
#   when a rule or an adequacy list is edited.
package residency_test

import data.residency

_row(o, d, cat) := [x.allow, x.localization, x.requires] if {
	x := residency.decide({"origin": o, "destination": d, "category": cat})
}

_cites(o, d, cat, prefix) if {
	startswith(residency.decide({"origin": o, "destination": d, "category": cat}).reasons[0], prefix)
}

# EU/EEA: DE -> US
test_eu_matrix_every_category if {
	_row("DE", "US", "machine") == [true, "none", []]
	_row("DE", "US", "personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("DE", "US", "sensitive_personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("DE", "US", "important") == [false, "none", []]
	_row("DE", "US", "core") == [false, "none", []]
	_cites("DE", "US", "machine", "EU GDPR Art 2(1), Art 4(1); Reg (EU) 2018/1807 Art 4; Data Act (EU) 2023/2854 Art 32")
	_cites("DE", "US", "personal", "EU GDPR Art 45-47, 49; Schrems II C-311/18")
	_cites("DE", "US", "sensitive_personal", "EU GDPR Art 9, 45-47, 49; Schrems II C-311/18")
	_cites("DE", "US", "important", "EU GDPR Chapter V (Art 44-49)")
	_cites("DE", "US", "core", "EU GDPR Chapter V (Art 44-49)")
}

# EEA-EFTA exporter: NO -> BR
test_eea_efta_matrix_every_category if {
	_row("NO", "BR", "machine") == [true, "none", []]
	_row("NO", "BR", "personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("NO", "BR", "sensitive_personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("NO", "BR", "important") == [false, "none", []]
	_row("NO", "BR", "core") == [false, "none", []]
	_cites("NO", "BR", "machine", "EU GDPR Art 2(1), Art 4(1); Reg (EU) 2018/1807 Art 4; Data Act (EU) 2023/2854 Art 32")
	_cites("NO", "BR", "personal", "EU GDPR Art 45-47, 49; Schrems II C-311/18")
	_cites("NO", "BR", "sensitive_personal", "EU GDPR Art 9, 45-47, 49; Schrems II C-311/18")
	_cites("NO", "BR", "important", "EU GDPR Chapter V (Art 44-49)")
	_cites("NO", "BR", "core", "EU GDPR Chapter V (Art 44-49)")
}

# UK: GB -> US
test_uk_matrix_every_category if {
	_row("GB", "US", "machine") == [true, "none", []]
	_row("GB", "US", "personal") == [false, "none", ["BCR+TIA", "TIA+UK_IDTA"]]
	_row("GB", "US", "sensitive_personal") == [false, "none", ["BCR+TIA", "TIA+UK_IDTA"]]
	_row("GB", "US", "important") == [false, "none", []]
	_row("GB", "US", "core") == [false, "none", []]
	_cites("GB", "US", "machine", "UK GDPR Art 2(1), Art 4(1)")
	_cites("GB", "US", "personal", "UK GDPR Art 45-46 as amended by the Data (Use and Access) Act 2025 (in force 5 Feb 2026)")
	_cites("GB", "US", "sensitive_personal", "UK GDPR Art 9, 45-46 as amended by the Data (Use and Access) Act 2025")
	_cites("GB", "US", "important", "UK GDPR Chapter V (Art 44-49)")
	_cites("GB", "US", "core", "UK GDPR Chapter V (Art 44-49)")
}

# Switzerland: CH -> US
test_ch_matrix_every_category if {
	_row("CH", "US", "machine") == [true, "none", []]
	_row("CH", "US", "personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("CH", "US", "sensitive_personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("CH", "US", "important") == [false, "none", []]
	_row("CH", "US", "core") == [false, "none", []]
	_cites("CH", "US", "machine", "CH FADP Art 1, Art 5(a)")
	_cites("CH", "US", "personal", "CH FADP Art 16-17")
	_cites("CH", "US", "sensitive_personal", "CH FADP Art 5(c), 16-17")
	_cites("CH", "US", "important", "CH FADP Art 16-17")
	_cites("CH", "US", "core", "CH FADP Art 16-17")
}

# United States: US -> DE
test_us_matrix_every_category if {
	_row("US", "DE", "machine") == [true, "none", []]
	_row("US", "DE", "personal") == [true, "none", []]
	_row("US", "DE", "sensitive_personal") == [true, "none", []]
	_row("US", "DE", "important") == [false, "none", []]
	_row("US", "DE", "core") == [false, "none", []]
	_cites("US", "DE", "machine", "US: no general localisation law")
	_cites("US", "DE", "personal", "US: no general localisation law; state privacy laws do not localise [M]")
	_cites("US", "DE", "sensitive_personal", "US: no general localisation law; state privacy laws do not localise [M]")
	_cites("US", "DE", "important", "US: no general localisation law")
	_cites("US", "DE", "core", "US: no general localisation law")
}

# US to a country of concern: US -> CN
test_doj_matrix_every_category if {
	_row("US", "CN", "machine") == [true, "none", []]
	_row("US", "CN", "personal") == [true, "none", []]
	_row("US", "CN", "sensitive_personal") == [true, "none", []]
	_row("US", "CN", "important") == [false, "none", []]
	_row("US", "CN", "core") == [false, "none", []]
	_cites("US", "CN", "machine", "US: no general localisation law")
	_cites("US", "CN", "personal", "US: no general localisation law; state privacy laws do not localise [M]")
	_cites("US", "CN", "sensitive_personal", "US: no general localisation law; state privacy laws do not localise [M]")
	_cites("US", "CN", "important", "US: no general localisation law")
	_cites("US", "CN", "core", "US: no general localisation law")
}

# China: CN -> DE
test_cn_matrix_every_category if {
	_row("CN", "DE", "machine") == [true, "none", []]
	_row("CN", "DE", "personal") == [false, "none", ["TIA"]]
	_row("CN", "DE", "sensitive_personal") == [false, "none", ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"]]
	_row("CN", "DE", "important") == [false, "primary_in_country", ["CN_SECURITY_ASSESSMENT"]]
	_row("CN", "DE", "core") == [false, "in_country_only", ["CN_SECURITY_ASSESSMENT+STATE_APPROVAL"]]
	_cites("CN", "DE", "machine", "CN CAC 2024 Provisions Art 2, Art 3")
	_cites("CN", "DE", "personal", "CN CAC 2024 Provisions Art 5(4)")
	_cites("CN", "DE", "sensitive_personal", "CN PIPL Art 38; CAC 2024 Provisions Art 8")
	_cites("CN", "DE", "important", "CN CSL Art 37; DSL Art 31; MIIT industrial data measures; CAC 2024 Provisions Art 7")
	_cites("CN", "DE", "core", "CN DSL Art 21, 31; MIIT industrial data measures")
}

# Russia: RU -> DE
test_ru_matrix_every_category if {
	_row("RU", "DE", "machine") == [true, "none", []]
	_row("RU", "DE", "personal") == [false, "primary_in_country", ["CONSENT+RU_RKN_NOTIFIED"]]
	_row("RU", "DE", "sensitive_personal") == [false, "primary_in_country", ["CONSENT+RU_RKN_NOTIFIED"]]
	_row("RU", "DE", "important") == [false, "none", []]
	_row("RU", "DE", "core") == [false, "none", []]
	_cites("RU", "DE", "machine", "RU 152-FZ Art 3")
	_cites("RU", "DE", "personal", "RU 152-FZ Art 12, Art 18(5)")
	_cites("RU", "DE", "sensitive_personal", "RU 152-FZ Art 10, 12, 18(5)")
	_cites("RU", "DE", "important", "RU 152-FZ")
	_cites("RU", "DE", "core", "RU 152-FZ")
}

# India: IN -> US
test_in_matrix_every_category if {
	_row("IN", "US", "machine") == [true, "none", []]
	_row("IN", "US", "personal") == [true, "none", []]
	_row("IN", "US", "sensitive_personal") == [true, "none", []]
	_row("IN", "US", "important") == [false, "none", []]
	_row("IN", "US", "core") == [false, "none", []]
	_cites("IN", "US", "machine", "IN DPDP Act 2023 s.3")
	_cites("IN", "US", "personal", "IN DPDP Act 2023 s.16(1); DPDP Rules 2025 Rule 15")
	_cites("IN", "US", "sensitive_personal", "IN DPDP Act 2023 s.16(1); DPDP Rules 2025 Rule 15")
	_cites("IN", "US", "important", "IN DPDP Act 2023")
	_cites("IN", "US", "core", "IN DPDP Act 2023")
}

# Vietnam: VN -> SG
test_vn_matrix_every_category if {
	_row("VN", "SG", "machine") == [true, "none", []]
	_row("VN", "SG", "personal") == [false, "none", ["VN_TIA_FILED"]]
	_row("VN", "SG", "sensitive_personal") == [false, "none", ["VN_TIA_FILED"]]
	_row("VN", "SG", "important") == [false, "none", ["STATE_APPROVAL"]]
	_row("VN", "SG", "core") == [false, "in_country_only", ["STATE_APPROVAL"]]
	_cites("VN", "SG", "machine", "VN PDP Law 91/2025/QH15 Art 2")
	_cites("VN", "SG", "personal", "VN PDP Law 91/2025/QH15; Decree 356/2025")
	_cites("VN", "SG", "sensitive_personal", "VN PDP Law 91/2025/QH15; Decree 356/2025")
	_cites("VN", "SG", "important", "VN Law on Data 60/2024/QH15; Decree 165/2025")
	_cites("VN", "SG", "core", "VN Law on Data 60/2024/QH15; Decree 165/2025")
}

# Singapore: SG -> US
test_sg_matrix_every_category if {
	_row("SG", "US", "machine") == [true, "none", []]
	_row("SG", "US", "personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("SG", "US", "sensitive_personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("SG", "US", "important") == [false, "none", []]
	_row("SG", "US", "core") == [false, "none", []]
	_cites("SG", "US", "machine", "SG PDPA s.2(1)")
	_cites("SG", "US", "personal", "SG PDPA s.26; PDPR 2021 regs 10-12")
	_cites("SG", "US", "sensitive_personal", "SG PDPA s.26; PDPR 2021 regs 10-12")
	_cites("SG", "US", "important", "SG PDPA s.26")
	_cites("SG", "US", "core", "SG PDPA s.26")
}

# Japan: JP -> US
test_jp_matrix_every_category if {
	_row("JP", "US", "machine") == [true, "none", []]
	_row("JP", "US", "personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("JP", "US", "sensitive_personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("JP", "US", "important") == [false, "none", []]
	_row("JP", "US", "core") == [false, "none", []]
	_cites("JP", "US", "machine", "JP APPI Art 2(1)")
	_cites("JP", "US", "personal", "JP APPI Art 28")
	_cites("JP", "US", "sensitive_personal", "JP APPI Art 20(2), 28")
	_cites("JP", "US", "important", "JP APPI Art 28")
	_cites("JP", "US", "core", "JP APPI Art 28")
}

# South Korea: KR -> US
test_kr_matrix_every_category if {
	_row("KR", "US", "machine") == [true, "none", []]
	_row("KR", "US", "personal") == [false, "none", ["CONSENT"]]
	_row("KR", "US", "sensitive_personal") == [false, "none", ["CONSENT"]]
	_row("KR", "US", "important") == [false, "none", []]
	_row("KR", "US", "core") == [false, "none", []]
	_cites("KR", "US", "machine", "KR PIPA Art 2")
	_cites("KR", "US", "personal", "KR PIPA Art 28-8")
	_cites("KR", "US", "sensitive_personal", "KR PIPA Art 23, 28-8")
	_cites("KR", "US", "important", "KR PIPA Art 28-8")
	_cites("KR", "US", "core", "KR PIPA Art 28-8")
}

# Brazil: BR -> US
test_br_matrix_every_category if {
	_row("BR", "US", "machine") == [true, "none", []]
	_row("BR", "US", "personal") == [false, "none", ["BCR", "CONSENT"]]
	_row("BR", "US", "sensitive_personal") == [false, "none", ["BCR", "CONSENT"]]
	_row("BR", "US", "important") == [false, "none", []]
	_row("BR", "US", "core") == [false, "none", []]
	_cites("BR", "US", "machine", "BR LGPD Art 5(I)")
	_cites("BR", "US", "personal", "BR LGPD Art 33; Res. CD/ANPD 19/2024")
	_cites("BR", "US", "sensitive_personal", "BR LGPD Art 11, 33; Res. CD/ANPD 19/2024")
	_cites("BR", "US", "important", "BR LGPD Art 33")
	_cites("BR", "US", "core", "BR LGPD Art 33")
}

# Indonesia: ID -> US
test_id_matrix_every_category if {
	_row("ID", "US", "machine") == [true, "none", []]
	_row("ID", "US", "personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("ID", "US", "sensitive_personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("ID", "US", "important") == [false, "none", []]
	_row("ID", "US", "core") == [false, "none", []]
	_cites("ID", "US", "machine", "ID GR 71/2019 Art 21")
	_cites("ID", "US", "personal", "ID PDP Law 27/2022 Art 56")
	_cites("ID", "US", "sensitive_personal", "ID PDP Law 27/2022 Art 4(2), 56")
	_cites("ID", "US", "important", "ID PDP Law 27/2022 Art 56")
	_cites("ID", "US", "core", "ID PDP Law 27/2022 Art 56")
}

# Saudi Arabia: SA -> US
test_sa_matrix_every_category if {
	_row("SA", "US", "machine") == [true, "none", []]
	_row("SA", "US", "personal") == [false, "none", ["BCR+TIA"]]
	_row("SA", "US", "sensitive_personal") == [false, "none", ["BCR+TIA"]]
	_row("SA", "US", "important") == [false, "none", []]
	_row("SA", "US", "core") == [false, "none", []]
	_cites("SA", "US", "machine", "SA PDPL Art 1")
	_cites("SA", "US", "personal", "SA PDPL Art 29; Transfer Regulation (amended 1 Sep 2024)")
	_cites("SA", "US", "sensitive_personal", "SA PDPL Art 29; Transfer Regulation (amended 1 Sep 2024)")
	_cites("SA", "US", "important", "SA PDPL Art 29")
	_cites("SA", "US", "core", "SA PDPL Art 29")
}

# Australia: AU -> US
test_au_matrix_every_category if {
	_row("AU", "US", "machine") == [true, "none", []]
	_row("AU", "US", "personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("AU", "US", "sensitive_personal") == [false, "none", ["BCR", "CONSENT", "SCC"]]
	_row("AU", "US", "important") == [false, "none", []]
	_row("AU", "US", "core") == [false, "none", []]
	_cites("AU", "US", "machine", "AU Privacy Act 1988 s.6")
	_cites("AU", "US", "personal", "AU Privacy Act APP 8.1, 8.2(b), s.16C")
	_cites("AU", "US", "sensitive_personal", "AU Privacy Act APP 3.3, 8.1, 8.2(b), s.16C")
	_cites("AU", "US", "important", "AU Privacy Act 1988 APP 8")
	_cites("AU", "US", "core", "AU Privacy Act 1988 APP 8")
}

# Canada: CA -> US
test_ca_matrix_every_category if {
	_row("CA", "US", "machine") == [true, "none", []]
	_row("CA", "US", "personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("CA", "US", "sensitive_personal") == [false, "none", ["BCR+TIA", "SCC+TIA"]]
	_row("CA", "US", "important") == [false, "none", []]
	_row("CA", "US", "core") == [false, "none", []]
	_cites("CA", "US", "machine", "CA PIPEDA s.2")
	_cites("CA", "US", "personal", "CA-QC Private Sector Act s.17 (Law 25)")
	_cites("CA", "US", "sensitive_personal", "CA-QC Private Sector Act s.17 (Law 25)")
	_cites("CA", "US", "important", "CA PIPEDA; Quebec Law 25")
	_cites("CA", "US", "core", "CA PIPEDA; Quebec Law 25")
}
