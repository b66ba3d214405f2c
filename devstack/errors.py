"""Errors raised while starting local components."""


class ComponentError(RuntimeError):
    """A component could not be found, started or stopped; the message says which and why."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
