import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.errors import RegistryError
from ingest.registry import Registry, load_registry
from policy import models as policy_models
from policy.vocabulary import VOCABULARY

REPO = Path(__file__).resolve().parents[2]


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
        (
            GOOD.replace("country: DE}\nprofiles", "country: Germany}\nprofiles"),
            r"registry.yaml:2: regions.eu.country: String should match pattern",
        ),
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
    text = GOOD.replace(
        "s1: {country: DE, home_region: eu}",
        "s1: {country: MY, home_region: eu, safeguards: "
        "{DE: [MY_TIA, SCC]}, safeguard_dates: {DE: {MY_TIA: 2025-05-02, SCC: '2024-01-31'}}}",
    )
    site = load_registry(_write(tmp_path, text)).sites["s1"]
    assert site.safeguard_dates == {"DE": {"MY_TIA": "2025-05-02", "SCC": "2024-01-31"}}


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ("{DE: {MY_TIA: '2025-5-2'}}", r"safeguard_dates.DE.MY_TIA.*String should match pattern"),
        ("{DE: {NO_SUCH_CODE: 2025-05-02}}", r"safeguard_dates.DE.NO_SUCH_CODE"),
    ],
)
def test_bad_safeguard_dates_are_refused(tmp_path: Path, dates: str, message: str) -> None:
    text = GOOD.replace(
        "s1: {country: DE, home_region: eu}", f"s1: {{country: MY, home_region: eu, safeguard_dates: {dates}}}"
    )
    with pytest.raises(RegistryError, match=message):
        load_registry(_write(tmp_path, text))


def _site(tmp_path: Path, attributes: str) -> Path:
    return _write(
        tmp_path,
        GOOD.replace("s1: {country: DE, home_region: eu}", f"s1: {{country: DE, home_region: eu, {attributes}}}"),
    )


def test_an_unknown_safeguard_code_names_the_field_and_every_code_of_the_policys_vocabulary(tmp_path: Path) -> None:
    codes = VOCABULARY.safeguards
    allowed = ", ".join(f"'{c}'" for c in codes[:-1]) + f" or '{codes[-1]}'"
    with pytest.raises(RegistryError) as refused:
        load_registry(_site(tmp_path, "safeguards: {US: [SCC, PINKY_SWEAR]}"))
    assert str(refused.value).endswith(f"registry.yaml:6: sites.s1.safeguards.US.1: Input should be {allowed}")


def test_the_safeguard_codes_a_site_may_list_are_the_policys(tmp_path: Path) -> None:
    """A code added to the policy's vocabulary (policy/data/vocabulary.json) is one a site may list: the
    registry keeps no list of its own (a fresh interpreter, whose policy vocabulary has one more code)."""
    from policy.vocabulary import DEFAULT_POLICY_DIR

    draft = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR / "data", draft / "data")
    vocab = json.loads((draft / "data" / "vocabulary.json").read_text())
    vocab["safeguards"]["XX_NEW_CLAUSES"] = "a safeguard a compliance officer adds"
    (draft / "data" / "vocabulary.json").write_text(json.dumps(vocab))
    registry = _site(tmp_path, "safeguards: {US: [SCC, XX_NEW_CLAUSES]}")
    script = (
        "import sys; from pathlib import Path; import policy.vocabulary as v\n"
        "v.VOCABULARY = v.load_vocabulary(Path(sys.argv[1]))\n"
        "from ingest.registry import load_registry\n"
        "print(load_registry(Path(sys.argv[2])).sites['s1'].safeguards['US'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(draft), str(registry)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['SCC', 'XX_NEW_CLAUSES']"
    with pytest.raises(RegistryError, match=r"sites\.s1\.safeguards\.US\.1: Input should be 'SCC'"):
        load_registry(registry)  # this interpreter's policy (the shipped one) does not know the code


def test_a_sites_entity_and_volume_are_the_policys_models(tmp_path: Path) -> None:
    """Every entity flag the policy reads (cni, subdivision too) can be declared; an unknown key is refused."""
    site = load_registry(
        _site(tmp_path, "entity: {cni: true, subdivision: ' qc '}, volume: {individuals_12m: 5}")
    ).sites["s1"]
    assert isinstance(site.entity, policy_models.Entity) and isinstance(site.volume, policy_models.Volume)
    assert (site.entity.cni, site.entity.subdivision, site.volume.individuals_12m) == (True, "QC", 5)
    assert set(site.entity.model_dump()) >= set(VOCABULARY.entity_flags)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ("entity: {ciio: true, colour: red}", r"sites\.s1\.entity\.colour: Extra inputs are not permitted"),
        ("entity: {cni: 1}", r"sites\.s1\.entity\.cni: Input should be a valid boolean"),
        (
            "entity: {subdivision: CA-QC}",
            r"sites\.s1\.entity\.subdivision: 'CA-QC' is not a subdivision of the site's country: give the part of its "
            r"ISO 3166-2 code after the country \(QC for CA-QC\)",
        ),
        ("entity: {subdivision: 'Q C'}", r"sites\.s1\.entity\.subdivision: 'Q C' is not a subdivision"),
        (
            "volume: {individuals_ytd: 10000000001}",
            r"sites\.s1\.volume\.individuals_ytd: Input should be less than or equal to 10000000000",
        ),
        ("volume: {individuals_ytd: false}", r"sites\.s1\.volume\.individuals_ytd: Input should be a valid integer"),
        ("volume: {people: 3}", r"sites\.s1\.volume\.people: Extra inputs are not permitted"),
    ],
)
def test_bad_entity_and_volume_are_refused_naming_the_field(tmp_path: Path, attributes: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        load_registry(_site(tmp_path, attributes))


def test_a_sites_subdivision_reaches_the_policy(tmp_path: Path) -> None:
    """A Canadian site outside Quebec says so (entity.subdivision): the policy no longer applies the Quebec rule,
    which it applies cautiously when no subdivision is given."""
    from ingest.pipeline.router import policy_flow
    from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine

    engine = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)

    text = GOOD.replace("eu: {country: DE}", "eu: {country: DE}\n  ca: {country: CA}").replace(
        "s1: {country: DE, home_region: eu}",
        "s1: {country: CA, home_region: ca}\n  s2: {country: CA, home_region: ca, entity: {subdivision: 'on'}}",
    )
    registry = load_registry(_write(tmp_path, text))
    cautious, ontario = (
        engine.decide(policy_flow(registry, registry.sites[site], "eu", "personal")) for site in ("s1", "s2")
    )
    assert registry.sites["s2"].entity.subdivision == "ON"
    assert policy_flow(registry, registry.sites["s2"], "eu", "personal").entity.subdivision == "ON"
    assert any("entity.subdivision not given" in r for r in cautious.reasons)
    assert not any("entity.subdivision not given" in r for r in ontario.reasons)
    assert any("entity.subdivision ON" in r for r in ontario.reasons), ontario.reasons
