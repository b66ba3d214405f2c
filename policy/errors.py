"""Errors raised by the policy package.

Every error is a :class:`PolicyError`, so callers that only need to know "the
policy could not answer" catch that one class::

    PolicyError
    +-- PolicyLoadError         rego/data unreadable, unparsable or not compiling (names the file)
    +-- PolicyInputError        the flow is not usable (also a ValueError)
    +-- PolicyEvaluationError   undefined or malformed answer
    +-- PolicyUnavailableError  OPA unreachable (names host:port)
    +-- PolicyDraftError        an uploaded draft is not a policy directory (bad archive, path or size)
"""

from __future__ import annotations


class PolicyError(Exception):
    """Base class of every policy error."""


class PolicyLoadError(PolicyError):
    """The Rego modules or the data could not be read, parsed or compiled."""


class PolicyInputError(PolicyError, ValueError):
    """The flow handed to the engine is not a usable flow (missing or mistyped fields)."""


class PolicyEvaluationError(PolicyError):
    """The policy ran but its answer is missing (undefined), malformed or an error."""


class PolicyUnavailableError(PolicyError):
    """A remote policy engine (an OPA server) could not be reached."""


class PolicyDraftError(PolicyError):
    """A policy draft (an uploaded archive or file mapping) is not a usable policy directory."""
