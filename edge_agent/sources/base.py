"""The contract every source implements (after Telegraf's ``Input``/``ServiceInput``).

Lifecycle: ``init()`` validates and prepares without I/O (bad settings are rejected here);
``start()`` opens connections (retry-able); ``read()`` returns the samples due so far, each
stamped at the source with its own ``ts``; ``stop()`` releases resources. The agent calls
``read()`` every ``poll_interval_s`` from a thread of the source's own, so a slow or failing
source never holds up the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar, get_args, get_origin, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edge_agent.errors import SourceError
from edge_agent.privacy import PrivacySettings
from wire import Reading
from wire.topics import valid_id

__all__ = ["DeviceId", "Source", "SourcePlugin", "SourceSettings"]


def _check_id(value: str) -> str:
    if not valid_id(value):
        raise ValueError(
            "must start with a letter or digit and contain only letters, digits, '_', '.' or '-' "
            "(at most 64 characters)"
        )
    return value


DeviceId = Annotated[str, AfterValidator(_check_id)]
"""A device, site or gateway id that is valid as a topic segment."""


class SourceSettings(BaseModel):
    """Settings every source has: its type (the registry key) and the device it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Source type, a key of the source registry.")
    device_id: DeviceId = Field(description="Device id; the data topic is tele/v1/{site_id}/{device_id}.")
    privacy: PrivacySettings | None = Field(
        default=None,
        description="Fields of this device to pseudonymize (added to the site's), and optionally its own keys.",
    )


@runtime_checkable
class Source(Protocol):
    """A source of readings for one device."""

    @property
    def device_id(self) -> str:
        """The device whose readings this source produces."""
        ...

    @property
    def poll_interval_s(self) -> float:
        """How often the agent should call :meth:`read`."""
        ...

    def init(self) -> None:
        """Validate settings and prepare; no I/O. Raise ``SourceError`` or ``ConfigError``."""
        ...

    def start(self) -> None:
        """Open connections. May be called again after :meth:`stop` when the agent retries."""
        ...

    def read(self) -> list[Reading]:
        """Return the samples due since the previous call (possibly none), oldest first."""
        ...

    def stop(self) -> None:
        """Release resources. Must not raise if the source is not started."""
        ...


S = TypeVar("S", bound=SourceSettings)


@dataclass(frozen=True)
class SourcePlugin(Generic[S]):
    """One source type, as its plugin folder registers it (``PLUGIN`` in the folder's ``__init__.py``).

    ``settings`` is the config model (its ``type: Literal["<name>"]`` field names the type and selects the
    model in the agent config); ``load`` imports the source class, and with it the protocol library, only
    when a source of this type is built (a gateway without OPC UA never imports asyncua).
    """

    settings: type[S]
    load: Callable[[], Callable[[S], Source]]

    @property
    def type(self) -> str:
        """The config's ``type`` value of this plugin (the one value of the settings' ``type`` Literal)."""
        annotation: Any = self.settings.model_fields["type"].annotation
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        if len(values) != 1 or not isinstance(values[0], str):
            raise TypeError(f"{self.settings.__name__}.type must be a Literal of one name, not {annotation!r}")
        return values[0]

    def create(self, settings: SourceSettings) -> Source:
        """The source of ``settings`` (not yet initialised); SourceError when its library is missing."""
        if not isinstance(settings, self.settings):
            raise TypeError(f"expected {self.settings.__name__}, got {type(settings).__name__}")
        try:
            factory = self.load()
        except ImportError as exc:
            raise SourceError(
                settings.device_id,
                f"the {settings.type} source needs {exc.name or 'a library'}: pip install 'residency-telemetry[edge]'",
            ) from None
        return factory(settings)
