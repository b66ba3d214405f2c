"""Drafts and activation through the API, on this replica or followed from another.

``POST /api/v1/policy/drafts`` stores a draft (its files, in the control store, so that every replica can
load it) with the result of its check (:meth:`DraftActivation.upload_draft`); ``POST
/api/v1/policy/activate`` checks it the same way and activates it (:meth:`DraftActivation.activate`), or
activates the policy directory again (:meth:`DraftActivation.activate_file`). Other replicas see the
accepted activation in ``policy_activations`` on their next poll and follow it
(:meth:`DraftActivation._follow_api`). With ``INGEST_POLICY_ENGINE=opa`` all of these answer
:class:`ManagedByOpaError` (409). Loaded drafts are kept in memory (the last four) for what-if.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ingest.policy_runtime.candidate import CheckResult, check_candidate, check_draft
from ingest.policy_runtime.core import RuntimeCore, log
from ingest.policy_runtime.errors import ActivationRefused, DraftNotFoundError, ManagedByOpaError
from ingest.store import policy_activations
from ingest.store.policy_activations import Activation
from policy import EmbeddedPolicyEngine
from policy.bundle import count_tests, files_digest, read_policy_dir, snapshot, write_policy_dir
from policy.engine import compute_revision
from policy.errors import PolicyDraftError, PolicyError


class DraftActivation(RuntimeCore):
    """The API's ways of changing the policy of a :class:`RuntimeCore`: drafts, activation, following."""

    def _follow_api(self, *, startup: bool = False) -> None:
        """Follow the newest accepted API activation (made on any replica) not yet seen here.

        At startup, only when it is also newer than every accepted file activation: then the files
        have not been edited since, and the API-activated revision is the intended one.
        """
        row = policy_activations.latest_accepted(self.control_dsn, or_file=startup)
        if row is None or row["id"] <= self._last_api_id:
            return
        self._last_api_id = max(self._last_api_id, policy_activations.latest_api_id(self.control_dsn) or 0)
        if row["source"] != "api" or row["revision"] == self.active.revision:
            return
        with contextlib.suppress(ActivationRefused, DraftNotFoundError):  # recorded; this replica keeps its own
            if row["draft_id"] is None:  # the policy directory was activated again through the API
                if compute_revision(self.policy_dir) != row["revision"]:
                    log.warning(
                        "not following %s's activation of policy directory revision %s: this replica's "
                        "directory %s has another revision",
                        row["activated_by"],
                        row["revision"],
                        self.policy_dir,
                    )
                    return
                self.activate_file(row["activated_by"])
            else:
                self.activate(row["revision"], row["activated_by"], draft_id=row["draft_id"])

    def upload_draft(self, files: Mapping[str, bytes], uploaded_by: str) -> dict[str, Any]:
        """Store a draft (checked layout) with the result of its check: does it load, keep the platform's
        invariants and pass its tests (what an activation would say)."""
        if self.kind == "opa":
            raise ManagedByOpaError("policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)")
        try:
            texts = {name: content.decode("utf-8") for name, content in files.items()}
        except UnicodeDecodeError as exc:
            raise PolicyDraftError(f"policy files must be UTF-8 text: {exc}") from exc
        check = check_draft(files, self.invariants)
        size = sum(len(c) for c in files.values())
        draft_id = files_digest(files)
        tests = count_tests(files)
        policy_activations.save_draft(
            self.control_dsn,
            draft_id=draft_id,
            revision=check.revision,
            uploaded_by=uploaded_by,
            files=texts,
            size=size,
            tests=tests,
            loads=check.engine is not None,
            tests_passed=check.tests_passed,
            tests_failed=check.tests_failed,
            check_error=check.error,
            invariants_failed=check.invariants_failed,
        )
        if check.engine is not None:
            self._remember(check.revision, check.engine)
        return {
            "revision": check.revision,
            "draft_id": draft_id,
            "files": len(files),
            "bytes": size,
            "tests": tests,
            "loads": check.engine is not None,
            "tests_passed": check.tests_passed,
            "tests_failed": check.tests_failed,
            "invariants_failed": list(check.invariants_failed),
            "error": check.error,
        }

    def activate(
        self, revision: str | None, activated_by: str, *, draft_id: str | None = None, audit: bool = False
    ) -> Activation:
        """Check a draft and activate it; ActivationRefused (recorded) when it fails.

        ``draft_id``: exactly that draft (``revision``, when also given, must be its revision). Else the
        best draft of ``revision``: the newest whose upload check passed, before untested or failing ones
        (so an untested upload of the same revision never shadows a tested one); and when no draft has that
        revision but the policy directory has, the directory (:meth:`activate_file`).
        ``audit``: also write the attempt to the audit trail (an API request).
        """
        if self.kind == "opa":
            raise ManagedByOpaError(
                "policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa): activate by publishing a new bundle"
            )
        if draft_id is None and revision is None:
            raise DraftNotFoundError("name a draft_id or a revision to activate")
        try:
            draft_id, stored, files = self.draft_files(revision, draft_id=draft_id)
        except DraftNotFoundError:
            if draft_id is None and revision is not None and revision == self._directory_revision():
                return self.activate_file(activated_by, audit=audit)
            raise
        if revision is not None and stored != revision:
            raise DraftNotFoundError(f"draft {draft_id} has revision {stored}, not {revision}")
        revision = stored
        with self._lock:
            check = check_draft(files, self.invariants, prefix="policy-activate-")
            if check.ok and check.revision != revision:
                check = CheckResult(
                    check.revision,
                    None,
                    check.tests_passed,
                    check.tests_failed,
                    f"the stored files hash to {check.revision}, not {revision}",
                )
            if not check.ok or check.engine is None:
                self._refuse(revision, "api", activated_by, check, draft_id, audit=audit)
                raise ActivationRefused(revision, check.error or "does not load")
            check.engine.source = f"draft {draft_id}"
            return self._activate(check.engine, revision, "api", activated_by, check, draft_id, audit=audit)

    def activate_file(self, activated_by: str, *, audit: bool = False) -> Activation:
        """Activate the policy directory (``INGEST_POLICY_DIR``) again, e.g. after an API draft, without
        uploading it: the same checks as any candidate. Recorded as an ``api`` activation without a draft,
        which other replicas follow with their own directory when it has the same revision."""
        if self.kind == "opa":
            raise ManagedByOpaError("policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)")
        with self._lock:
            try:
                copy = snapshot(self.policy_dir)
            except (PolicyError, OSError) as exc:
                check = CheckResult("unreadable", None, 0, 0, f"policy directory {self.policy_dir} unreadable: {exc}")
                self._refuse(check.revision, "api", activated_by, check, audit=audit)
                raise ActivationRefused(check.revision, check.error or "unreadable") from None
            try:
                check = check_candidate(copy, self.invariants)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            self._file_revision = check.revision
            if not check.ok or check.engine is None:
                self._refuse(check.revision, "api", activated_by, check, audit=audit)
                raise ActivationRefused(check.revision, check.error or "does not load")
            check.engine.source = str(self.policy_dir)
            return self._activate(check.engine, check.revision, "api", activated_by, check, None, audit=audit)

    def _directory_revision(self) -> str | None:
        try:
            return compute_revision(self.policy_dir)
        except (PolicyError, OSError):
            return None

    def draft_files(self, revision: str | None, *, draft_id: str | None = None) -> tuple[str, str, dict[str, bytes]]:
        """(draft id, revision, files) of ``draft_id``, or of the best draft of ``revision`` (see :meth:`activate`)."""
        found = policy_activations.find_draft(self.control_dsn, revision, draft_id=draft_id)
        if found is None:
            what = f"draft {draft_id}" if draft_id else f"draft with revision {revision!r}"
            raise DraftNotFoundError(f"no {what} (upload it to POST /api/v1/policy/drafts)")
        found_id, stored, texts = found
        return found_id, stored, {name: text.encode("utf-8") for name, text in texts.items()}

    def draft_engine(self, revision: str) -> EmbeddedPolicyEngine:
        """The loaded engine of a draft (kept in memory for what-if), loading it from the control store if needed."""
        with self._lock:
            found = self._drafts.get(revision)
            if found is not None:
                self._drafts.move_to_end(revision)
                return found
        _, _, files = self.draft_files(revision)
        tmp = Path(tempfile.mkdtemp(prefix="policy-draft-"))
        try:
            engine = EmbeddedPolicyEngine.from_dir(write_policy_dir(files, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._remember(revision, engine)
        return engine

    def current_files(self) -> dict[str, bytes]:
        return read_policy_dir(self.policy_dir)

    def _remember(self, revision: str, engine: EmbeddedPolicyEngine) -> None:
        with self._lock:
            self._drafts[revision] = engine
            self._drafts.move_to_end(revision)
            while len(self._drafts) > 4:
                self._drafts.popitem(last=False)


__all__ = ["DraftActivation"]
