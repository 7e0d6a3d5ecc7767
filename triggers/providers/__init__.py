"""Provider registry: built-in providers plus the ``temporal_triggers.providers`` entry points."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

ENTRY_POINT_GROUP = "temporal_triggers.providers"


@dataclass(frozen=True)
class ProviderInfo:
    """What the API needs to know about a provider to validate a trigger."""

    name: str
    config_model: type[BaseModel]
    required_secrets: frozenset[str] = field(default_factory=frozenset)
    optional_secrets: frozenset[str] = field(default_factory=frozenset)

    @property
    def allowed_secrets(self) -> frozenset[str]:
        return self.required_secrets | self.optional_secrets


class UnknownProvider(LookupError):
    pass


_registry: dict[str, ProviderInfo] = {}
_loaded = False


def register(info: ProviderInfo) -> None:
    _registry[info.name] = info


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from triggers.providers import webhook

    register(webhook.info)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj: Any = ep.load()
        info = getattr(obj, "info", obj)
        if isinstance(info, ProviderInfo):
            _registry.setdefault(info.name, info)


def get_provider(name: str) -> ProviderInfo:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownProvider(name) from None


def provider_names() -> list[str]:
    _load()
    return sorted(_registry)
