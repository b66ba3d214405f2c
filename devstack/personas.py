"""Demo users of the local platform: one per role, each with a region scope, so that every persona (factory
operator, engineer, compliance officer, admin) can be tried at once. Created through the API as the demo
admin (so each creation is in the audit trail), with tokens valid for this run only."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from devstack.errors import ComponentError


@dataclass(frozen=True)
class Persona:
    role: str
    user: str
    regions: tuple[str, ...] | None  # None: every region
    why: str

    @property
    def scope(self) -> str:
        return "*" if self.regions is None else ",".join(self.regions)


@dataclass(frozen=True)
class DemoUser:
    persona: Persona
    token: str


PERSONAS = (
    Persona("operator", "operator-eu", ("eu-central",), "devices, sites and machine data of EU plants"),
    Persona("operator", "operator-cn", ("cn-north",), "devices, sites and machine data of the Shenzhen plant"),
    Persona("engineer", "engineer-eu-us", ("eu-central", "us-east"), "telemetry; personal data of EU and US stores"),
    # activation is global: a compliance officer who activates policies needs every region
    Persona("compliance", "compliance", None, "decisions, quarantine, policy drafts and activation, audit"),
)


def create_demo_users(api_url: str, admin_token: str, regions: list[str]) -> list[DemoUser]:
    """Create each persona whose regions exist in the registry (``regions``) and a token for it."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    made = []
    with httpx.Client(base_url=f"{api_url}/api/v1", headers=headers, timeout=10) as client:
        for persona in PERSONAS:
            if persona.regions is not None and not set(persona.regions) <= set(regions):
                continue
            body = {
                "name": persona.user,
                "roles": [persona.role],
                "regions": "*" if persona.regions is None else list(persona.regions),
            }
            created = client.post("/users", json=body)
            if created.status_code not in (201, 409):  # 409: kept from an earlier run (--keep)
                raise ComponentError("devstack", f"cannot create demo user {persona.user}: {created.text}")
            token = client.post(f"/users/{persona.user}/tokens", json={"label": "devstack demo (this run)"})
            if token.status_code != 201:
                raise ComponentError("devstack", f"cannot create a token for {persona.user}: {token.text}")
            made.append(DemoUser(persona, token.json()["token"]))
    return made
