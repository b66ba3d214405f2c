# METADATA
# title: Jurisdiction x category matrix
# description: |
#   One decision case per jurisdiction and category (machine, personal,
#   sensitive_personal, important, core) to one foreign destination with no
#   safeguards, no recipient flags and zero counters: allow, localization,
#   requires and the law the first reason cites.
package residency_test

case_eu_matrix_machine := {
	"flow": {"origin": "DE", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "EU GDPR Art 2(1), Art 4(1); Reg (EU) 2018/1807 Art 4; Data Act (EU) 2023/2854 Art 32"},
}

case_eu_matrix_personal := {
	"flow": {"origin": "DE", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "EU GDPR Art 45-47, 49; Schrems II C-311/18"},
}

case_eu_matrix_sensitive_personal := {
	"flow": {"origin": "DE", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "EU GDPR Art 9, 45-47, 49; Schrems II C-311/18"},
}

case_eu_matrix_important := {
	"flow": {"origin": "DE", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "EU GDPR Chapter V (Art 44-49)"},
}

case_eu_matrix_core := {
	"flow": {"origin": "DE", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "EU GDPR Chapter V (Art 44-49)"},
}

case_eea_efta_matrix_machine := {
	"flow": {"origin": "NO", "destination": "BR", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "EU GDPR Art 2(1), Art 4(1); Reg (EU) 2018/1807 Art 4; Data Act (EU) 2023/2854 Art 32"},
}

case_eea_efta_matrix_personal := {
	"flow": {"origin": "NO", "destination": "BR", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "EU GDPR Art 45-47, 49; Schrems II C-311/18"},
}

case_eea_efta_matrix_sensitive_personal := {
	"flow": {"origin": "NO", "destination": "BR", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "EU GDPR Art 9, 45-47, 49; Schrems II C-311/18"},
}

case_eea_efta_matrix_important := {
	"flow": {"origin": "NO", "destination": "BR", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "EU GDPR Chapter V (Art 44-49)"},
}

case_eea_efta_matrix_core := {
	"flow": {"origin": "NO", "destination": "BR", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "EU GDPR Chapter V (Art 44-49)"},
}

case_uk_matrix_machine := {
	"flow": {"origin": "GB", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "UK GDPR Art 2(1), Art 4(1)"},
}

case_uk_matrix_personal := {
	"flow": {"origin": "GB", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "TIA+UK_IDTA"], "cites": "UK GDPR Art 45-46 as amended by the Data (Use and Access) Act 2025 (in force 5 Feb 2026)"},
}

case_uk_matrix_sensitive_personal := {
	"flow": {"origin": "GB", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "TIA+UK_IDTA"], "cites": "UK GDPR Art 9, 45-46 as amended by the Data (Use and Access) Act 2025"},
}

case_uk_matrix_important := {
	"flow": {"origin": "GB", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "UK GDPR Chapter V (Art 44-49)"},
}

case_uk_matrix_core := {
	"flow": {"origin": "GB", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "UK GDPR Chapter V (Art 44-49)"},
}

case_ch_matrix_machine := {
	"flow": {"origin": "CH", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "CH FADP Art 1, Art 5(a)"},
}

case_ch_matrix_personal := {
	"flow": {"origin": "CH", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "CH FADP Art 16-17"},
}

case_ch_matrix_sensitive_personal := {
	"flow": {"origin": "CH", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "CH FADP Art 5(c), 16-17"},
}

case_ch_matrix_important := {
	"flow": {"origin": "CH", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "CH FADP Art 16-17"},
}

case_ch_matrix_core := {
	"flow": {"origin": "CH", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "CH FADP Art 16-17"},
}

case_us_matrix_machine := {
	"flow": {"origin": "US", "destination": "DE", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_us_matrix_personal := {
	"flow": {"origin": "US", "destination": "DE", "category": "personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law; state privacy laws do not localise [M]"},
}

case_us_matrix_sensitive_personal := {
	"flow": {"origin": "US", "destination": "DE", "category": "sensitive_personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law; state privacy laws do not localise [M]"},
}

case_us_matrix_important := {
	"flow": {"origin": "US", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_us_matrix_core := {
	"flow": {"origin": "US", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_doj_matrix_machine := {
	"flow": {"origin": "US", "destination": "CN", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_doj_matrix_personal := {
	"flow": {"origin": "US", "destination": "CN", "category": "personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law; state privacy laws do not localise [M]"},
}

case_doj_matrix_sensitive_personal := {
	"flow": {"origin": "US", "destination": "CN", "category": "sensitive_personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "US: no general localisation law; state privacy laws do not localise [M]"},
}

case_doj_matrix_important := {
	"flow": {"origin": "US", "destination": "CN", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_doj_matrix_core := {
	"flow": {"origin": "US", "destination": "CN", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "US: no general localisation law"},
}

case_cn_matrix_machine := {
	"flow": {"origin": "CN", "destination": "DE", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "CN CAC 2024 Provisions Art 2, Art 3"},
}

case_cn_matrix_personal := {
	"flow": {"origin": "CN", "destination": "DE", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["TIA"], "cites": "CN CAC 2024 Provisions Art 5(4)"},
}

case_cn_matrix_sensitive_personal := {
	"flow": {"origin": "CN", "destination": "DE", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"], "cites": "CN PIPL Art 38; CAC 2024 Provisions Art 8"},
}

case_cn_matrix_important := {
	"flow": {"origin": "CN", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CN_SECURITY_ASSESSMENT"], "cites": "CN CSL Art 37; DSL Art 31; MIIT industrial data measures; CAC 2024 Provisions Art 7"},
}

case_cn_matrix_core := {
	"flow": {"origin": "CN", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["CN_SECURITY_ASSESSMENT+STATE_APPROVAL"], "cites": "CN DSL Art 21, 31; MIIT industrial data measures"},
}

case_ru_matrix_machine := {
	"flow": {"origin": "RU", "destination": "DE", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "RU 152-FZ Art 3"},
}

case_ru_matrix_personal := {
	"flow": {"origin": "RU", "destination": "DE", "category": "personal"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CONSENT+RU_RKN_NOTIFIED"], "cites": "RU 152-FZ Art 12, Art 18(5)"},
}

case_ru_matrix_sensitive_personal := {
	"flow": {"origin": "RU", "destination": "DE", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "primary_in_country", "requires": ["CONSENT+RU_RKN_NOTIFIED"], "cites": "RU 152-FZ Art 10, 12, 18(5)"},
}

case_ru_matrix_important := {
	"flow": {"origin": "RU", "destination": "DE", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "RU 152-FZ"},
}

case_ru_matrix_core := {
	"flow": {"origin": "RU", "destination": "DE", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "RU 152-FZ"},
}

case_in_matrix_machine := {
	"flow": {"origin": "IN", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "IN DPDP Act 2023 s.3"},
}

case_in_matrix_personal := {
	"flow": {"origin": "IN", "destination": "US", "category": "personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "IN DPDP Act 2023 s.16(1); DPDP Rules 2025 Rule 15"},
}

case_in_matrix_sensitive_personal := {
	"flow": {"origin": "IN", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "IN DPDP Act 2023 s.16(1); DPDP Rules 2025 Rule 15"},
}

case_in_matrix_important := {
	"flow": {"origin": "IN", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "IN DPDP Act 2023"},
}

case_in_matrix_core := {
	"flow": {"origin": "IN", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "IN DPDP Act 2023"},
}

case_vn_matrix_machine := {
	"flow": {"origin": "VN", "destination": "SG", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "VN PDP Law 91/2025/QH15 Art 2"},
}

case_vn_matrix_personal := {
	"flow": {"origin": "VN", "destination": "SG", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["VN_TIA_FILED"], "cites": "VN PDP Law 91/2025/QH15; Decree 356/2025"},
}

case_vn_matrix_sensitive_personal := {
	"flow": {"origin": "VN", "destination": "SG", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["VN_TIA_FILED"], "cites": "VN PDP Law 91/2025/QH15; Decree 356/2025"},
}

case_vn_matrix_important := {
	"flow": {"origin": "VN", "destination": "SG", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": ["STATE_APPROVAL"], "cites": "VN Law on Data 60/2024/QH15; Decree 165/2025"},
}

case_vn_matrix_core := {
	"flow": {"origin": "VN", "destination": "SG", "category": "core"},
	"expect": {"allow": false, "localization": "in_country_only", "requires": ["STATE_APPROVAL"], "cites": "VN Law on Data 60/2024/QH15; Decree 165/2025"},
}

case_sg_matrix_machine := {
	"flow": {"origin": "SG", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "SG PDPA s.2(1)"},
}

case_sg_matrix_personal := {
	"flow": {"origin": "SG", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "CONSENT", "SCC"], "cites": "SG PDPA s.26; PDPR 2021 regs 10-12"},
}

case_sg_matrix_sensitive_personal := {
	"flow": {"origin": "SG", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "CONSENT", "SCC"], "cites": "SG PDPA s.26; PDPR 2021 regs 10-12"},
}

case_sg_matrix_important := {
	"flow": {"origin": "SG", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "SG PDPA s.26"},
}

case_sg_matrix_core := {
	"flow": {"origin": "SG", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "SG PDPA s.26"},
}

case_jp_matrix_machine := {
	"flow": {"origin": "JP", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "JP APPI Art 2(1)"},
}

case_jp_matrix_personal := {
	"flow": {"origin": "JP", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "JP APPI Art 28"},
}

case_jp_matrix_sensitive_personal := {
	"flow": {"origin": "JP", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "JP APPI Art 20(2), 28"},
}

case_jp_matrix_important := {
	"flow": {"origin": "JP", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "JP APPI Art 28"},
}

case_jp_matrix_core := {
	"flow": {"origin": "JP", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "JP APPI Art 28"},
}

case_kr_matrix_machine := {
	"flow": {"origin": "KR", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "KR PIPA Art 2"},
}

case_kr_matrix_personal := {
	"flow": {"origin": "KR", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["CONSENT"], "cites": "KR PIPA Art 28-8"},
}

case_kr_matrix_sensitive_personal := {
	"flow": {"origin": "KR", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["CONSENT"], "cites": "KR PIPA Art 23, 28-8"},
}

case_kr_matrix_important := {
	"flow": {"origin": "KR", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "KR PIPA Art 28-8"},
}

case_kr_matrix_core := {
	"flow": {"origin": "KR", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "KR PIPA Art 28-8"},
}

case_br_matrix_machine := {
	"flow": {"origin": "BR", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "BR LGPD Art 5(I)"},
}

case_br_matrix_personal := {
	"flow": {"origin": "BR", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT"], "cites": "BR LGPD Art 33; Res. CD/ANPD 19/2024"},
}

case_br_matrix_sensitive_personal := {
	"flow": {"origin": "BR", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT"], "cites": "BR LGPD Art 11, 33; Res. CD/ANPD 19/2024"},
}

case_br_matrix_important := {
	"flow": {"origin": "BR", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "BR LGPD Art 33"},
}

case_br_matrix_core := {
	"flow": {"origin": "BR", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "BR LGPD Art 33"},
}

case_id_matrix_machine := {
	"flow": {"origin": "ID", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "ID GR 71/2019 Art 21"},
}

case_id_matrix_personal := {
	"flow": {"origin": "ID", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "ID PDP Law 27/2022 Art 56"},
}

case_id_matrix_sensitive_personal := {
	"flow": {"origin": "ID", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "ID PDP Law 27/2022 Art 4(2), 56"},
}

case_id_matrix_important := {
	"flow": {"origin": "ID", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "ID PDP Law 27/2022 Art 56"},
}

case_id_matrix_core := {
	"flow": {"origin": "ID", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "ID PDP Law 27/2022 Art 56"},
}

case_sa_matrix_machine := {
	"flow": {"origin": "SA", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "SA PDPL Art 1"},
}

case_sa_matrix_personal := {
	"flow": {"origin": "SA", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA"], "cites": "SA PDPL Art 29; Transfer Regulation (amended 1 Sep 2024)"},
}

case_sa_matrix_sensitive_personal := {
	"flow": {"origin": "SA", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA"], "cites": "SA PDPL Art 29; Transfer Regulation (amended 1 Sep 2024)"},
}

case_sa_matrix_important := {
	"flow": {"origin": "SA", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "SA PDPL Art 29"},
}

case_sa_matrix_core := {
	"flow": {"origin": "SA", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "SA PDPL Art 29"},
}

case_au_matrix_machine := {
	"flow": {"origin": "AU", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "AU Privacy Act 1988 s.6"},
}

case_au_matrix_personal := {
	"flow": {"origin": "AU", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "AU Privacy Act APP 8.1, 8.2(b), s.16C"},
}

case_au_matrix_sensitive_personal := {
	"flow": {"origin": "AU", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT", "SCC"], "cites": "AU Privacy Act APP 3.3, 8.1, 8.2(b), s.16C"},
}

case_au_matrix_important := {
	"flow": {"origin": "AU", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "AU Privacy Act 1988 APP 8"},
}

case_au_matrix_core := {
	"flow": {"origin": "AU", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "AU Privacy Act 1988 APP 8"},
}

case_ca_matrix_machine := {
	"flow": {"origin": "CA", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "CA PIPEDA s.2"},
}

case_ca_matrix_personal := {
	"flow": {"origin": "CA", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "CA-QC Private Sector Act s.17 (Law 25)"},
}

case_ca_matrix_sensitive_personal := {
	"flow": {"origin": "CA", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR+TIA", "SCC+TIA"], "cites": "CA-QC Private Sector Act s.17 (Law 25)"},
}

case_ca_matrix_important := {
	"flow": {"origin": "CA", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "CA PIPEDA; Quebec Law 25"},
}

case_ca_matrix_core := {
	"flow": {"origin": "CA", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "CA PIPEDA; Quebec Law 25"},
}

case_my_matrix_machine := {
	"flow": {"origin": "MY", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "MY PDPA 2010 s.2, s.4"},
}

case_my_matrix_personal := {
	"flow": {"origin": "MY", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"], "cites": "MY PDPA 2010 s.129(2), (3)(a), (3)(f) as amended by the PDP (Amendment) Act 2024"},
}

case_my_matrix_sensitive_personal := {
	"flow": {"origin": "MY", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "CONSENT", "MY_TIA", "SCC"], "cites": "MY PDPA 2010 s.40, s.129(2), (3)(a), (3)(f)"},
}

case_my_matrix_important := {
	"flow": {"origin": "MY", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "MY PDPA 2010 s.129 as amended by the PDP (Amendment) Act 2024"},
}

case_my_matrix_core := {
	"flow": {"origin": "MY", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "MY PDPA 2010 s.129 as amended by the PDP (Amendment) Act 2024"},
}

case_th_matrix_machine := {
	"flow": {"origin": "TH", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "TH PDPA B.E. 2562 s.6"},
}

case_th_matrix_personal := {
	"flow": {"origin": "TH", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"], "cites": "TH PDPA B.E. 2562 s.28-29; PDPC notifications"},
}

case_th_matrix_sensitive_personal := {
	"flow": {"origin": "TH", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "CONSENT", "SCC", "TH_PDPC_BCR"], "cites": "TH PDPA B.E. 2562 s.26, 28-29; PDPC notifications"},
}

case_th_matrix_important := {
	"flow": {"origin": "TH", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "TH PDPA B.E. 2562 (2019) s.28-29"},
}

case_th_matrix_core := {
	"flow": {"origin": "TH", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "TH PDPA B.E. 2562 (2019) s.28-29"},
}

case_ph_matrix_machine := {
	"flow": {"origin": "PH", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "PH Data Privacy Act 2012 s.3(g), s.4"},
}

case_ph_matrix_personal := {
	"flow": {"origin": "PH", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "SCC"], "cites": "PH Data Privacy Act 2012 s.21; IRR 2016 s.50(a)"},
}

case_ph_matrix_sensitive_personal := {
	"flow": {"origin": "PH", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["ASEAN_MCC", "BCR", "SCC"], "cites": "PH Data Privacy Act 2012 s.13, s.21"},
}

case_ph_matrix_important := {
	"flow": {"origin": "PH", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "PH Data Privacy Act 2012 (RA 10173) s.21"},
}

case_ph_matrix_core := {
	"flow": {"origin": "PH", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "PH Data Privacy Act 2012 (RA 10173) s.21"},
}

case_mx_matrix_machine := {
	"flow": {"origin": "MX", "destination": "US", "category": "machine"},
	"expect": {"allow": true, "localization": "none", "requires": [], "cites": "MX LFPDPPP 2025 (scope: personal data)"},
}

case_mx_matrix_personal := {
	"flow": {"origin": "MX", "destination": "US", "category": "personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["BCR", "CONSENT"], "cites": "MX LFPDPPP 2025, transfers"},
}

case_mx_matrix_sensitive_personal := {
	"flow": {"origin": "MX", "destination": "US", "category": "sensitive_personal"},
	"expect": {"allow": false, "localization": "none", "requires": ["CONSENT"], "cites": "MX LFPDPPP 2025, sensitive data and transfers"},
}

case_mx_matrix_important := {
	"flow": {"origin": "MX", "destination": "US", "category": "important"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "MX LFPDPPP 2025 (Federal Law on the Protection of Personal Data Held by Private Parties"},
}

case_mx_matrix_core := {
	"flow": {"origin": "MX", "destination": "US", "category": "core"},
	"expect": {"allow": false, "localization": "none", "requires": [], "cites": "MX LFPDPPP 2025 (Federal Law on the Protection of Personal Data Held by Private Parties"},
}
