"""The active policy of a running ingest, and how a new revision becomes active without a restart.

:class:`ActivePolicy` is what the router asks: a :class:`policy.PolicyEngine` that delegates to the current
cached engine. Activation swaps one immutable :class:`ActiveState` reference (atomic for readers: the next
decision uses the new engine; a decision in flight finishes on the old one) and every new state has a new,
empty decision cache.

:class:`PolicyRuntime` decides when to swap:

- **file**: a watcher thread hashes the policy directory every ``INGEST_POLICY_WATCH_S`` seconds (0: off).
  When the revision on disk changes, it copies the directory (so an edit half-way through cannot mix two
  versions), loads the copy and runs its Rego tests; only a candidate that loads and passes is activated.
  A refused candidate is logged and recorded; the running revision stays.
- **api**: ``POST /api/v1/policy/drafts`` stores a draft (its files, in the control store, so that every
  replica can load it); ``POST /api/v1/policy/activate`` checks it the same way and activates it. Other
  replicas see the accepted activation in ``policy_activations`` on their next poll and follow it.
- **opa** (``INGEST_POLICY_ENGINE=opa``): OPA's bundles are the source of policy. The watcher asks OPA for
  its bundle revision and, when it changes, empties the decision cache and records the change. Drafts and
  activation through the API answer 409 in this mode.

Every attempt is a row of the control table ``policy_activations`` (migration 0002): revision, previous
revision, who, when, source, accepted or refused, and the error. Rows that cannot be written while the
control store is down are kept and written on a later poll.

Who: the authenticated user on the API (``Principal.user``, see ``ingest.api.auth``), ``file:<dir>`` for
file changes, ``opa-bundle`` for OPA. Draft uploads and API activations (accepted or refused) are also
written to the audit trail (``ingest.store.audit``) in the same transaction as their own row; replicas that
follow an activation record it in ``policy_activations`` only.

The package, by job:

- :mod:`~ingest.policy_runtime.active`: holding the active policy (:class:`ActivePolicy`, :class:`ActiveState`).
- :mod:`~ingest.policy_runtime.candidate`: checking a candidate (:func:`check_candidate`: loads, keeps the
  platform's invariants, passes its Rego tests; :class:`CheckResult`).
- :mod:`~ingest.policy_runtime.core`: the runtime's core (:class:`RuntimeCore`): startup revision, swapping
  in a new state or refusing it, and recording each attempt.
- :mod:`~ingest.policy_runtime.drafts`: drafts and API activation, and following other replicas'
  (:class:`DraftActivation`).
- :mod:`~ingest.policy_runtime.watch`: the watcher (files, OPA, other replicas) and the lifecycle: the
  complete :class:`PolicyRuntime`.
- :mod:`~ingest.policy_runtime.errors`: :class:`ActivationRefused`, :class:`DraftNotFoundError`,
  :class:`ManagedByOpaError`.

Their SQL is the store layer's: :mod:`ingest.store.policy_activations` (``policy_activations``,
``policy_drafts`` and their audit rows; :class:`Activation` is one of its rows) and
:mod:`ingest.store.recorded_decisions` (the recent decision inputs that warm a new cache).
"""

from ingest.policy_runtime.active import ActivePolicy, ActiveState
from ingest.policy_runtime.candidate import CheckResult, check_candidate
from ingest.policy_runtime.errors import ActivationRefused, DraftNotFoundError, ManagedByOpaError
from ingest.policy_runtime.watch import PolicyRuntime
from ingest.store.policy_activations import Activation

__all__ = [
    "Activation",
    "ActivationRefused",
    "ActivePolicy",
    "ActiveState",
    "CheckResult",
    "DraftNotFoundError",
    "ManagedByOpaError",
    "PolicyRuntime",
    "check_candidate",
]
