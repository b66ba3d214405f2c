from pathlib import Path

import pytest

from ingest.errors import RegistryError
from ingest.registry import Registry, load_registry


def test_demo_registry_loads(registry: Registry) -> None:
    assert registry.analytics_region == "us-east"
    assert {s.country for s in registry.sites.values()} >= {"DE", "FR", "US", "CN", "VN", "SG"}
    site_id, site = registry.site_of("cn-shenzhen-cnc-01")  # type: ignore[misc]
    assert (site_id, site.country, site.entity.ciio) == ("cn-shenzhen", "CN", True)
    assert registry.profile_of("cn-shenzhen-cnc-01").fields["operator_badge"].category == "personal"
    assert registry.candidate_regions(site) == ["cn-north", "us-east"]
    assert registry.candidate_regions(registry.sites["us-detroit"]) == ["us-east"]
    assert registry.site_of("nope") is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


GOOD = """\
regions:
  eu: {country: DE}
profiles:
  p: {fields: {x: {category: machine}}}
sites:
  s1: {country: DE, home_region: eu}
devices:
  d1: {site: s1, profile: p}
"""


def test_minimal_registry(tmp_path: Path) -> None:
    assert load_registry(_write(tmp_path, GOOD)).devices["d1"].profile == "p"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("home_region: eu", "home_region: mars"), r"registry.yaml:\d+: .*'mars' is not a declared region"),
        (GOOD.replace("country: DE}\nprofiles", "country: Germany}\nprofiles"),
         r"registry.yaml:2: regions.eu.country: String should match pattern"),
        (GOOD.replace("category: machine", "category: secret"), r"registry.yaml:4: profiles.p.fields.x.category"),
        (GOOD.replace("profile: p}", "profile: q}"), r"'q' is not a declared profile"),
        (GOOD + "  d2: {site: s1, profile: p, color: red}\n", r"devices.d2.color: Extra inputs are not permitted"),
        ("regions: [unclosed", r"registry.yaml:\d+: not valid YAML"),
        ("- a list", r"must be a mapping"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        load_registry(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read registry"):
        load_registry(tmp_path / "missing.yaml")


def test_safeguard_dates_per_destination_read_as_iso_dates(tmp_path: Path) -> None:
    """A YAML date (unquoted) or a string: the day a dated safeguard (MY_TIA) was made, per destination country."""
    text = GOOD.replace("s1: {country: DE, home_region: eu}", "s1: {country: MY, home_region: eu, safeguards: "
                        "{DE: [MY_TIA, SCC]}, safeguard_dates: {DE: {MY_TIA: 2025-05-02, SCC: '2024-01-31'}}}")
    site = load_registry(_write(tmp_path, text)).sites["s1"]
    assert site.safeguard_dates == {"DE": {"MY_TIA": "2025-05-02", "SCC": "2024-01-31"}}


@pytest.mark.parametrize(("dates", "message"), [
    ("{DE: {MY_TIA: '2025-5-2'}}", r"safeguard_dates.DE.MY_TIA.*String should match pattern"),
    ("{DE: {NO_SUCH_CODE: 2025-05-02}}", r"safeguard_dates.DE.NO_SUCH_CODE"),
])
def test_bad_safeguard_dates_are_refused(tmp_path: Path, dates: str, message: str) -> None:
    text = GOOD.replace("s1: {country: DE, home_region: eu}", f"s1: {{country: MY, home_region: eu, "
                        f"safeguard_dates: {dates}}}")
    with pytest.raises(RegistryError, match=message):
        load_registry(_write(tmp_path, text))
