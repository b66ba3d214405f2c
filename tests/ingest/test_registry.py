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
