"""A Rego policy for tests that need transforms: it allows every flow and pseudonymizes personal data that leaves
its country (the shipped policy denies or stores it for the demo registry's flows)."""

TRANSFORM_POLICY = """package residency

decision := {
    "allow": true,
    "localization": "none",
    "requires": [],
    "transforms": _transforms,
    "reasons": ["test policy"],
    "policy_revision": "sha256:test",
}

_transforms := {"personal": "pseudonymize"} if {
    input.category == "personal"
    input.origin != input.destination
} else := {}
"""
