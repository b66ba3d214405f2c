"""Authentication of API callers: roles scoped to regions (:mod:`roles`) and API tokens (:mod:`tokens`)."""
