"""Provider registry: the built-in providers (``BUILTINS``, registered here and only here)
plus the providers of installed packages (the ``temporal_triggers.providers`` entry points).

What the API and the trigger workflow do with a provider follows from what it declares
(``ProviderInfo``: ``source``, ``receives_webhooks``, ``overlap_field``), never from its name
or from guessing at its config's field names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from triggers.providers.base import SourceProvider

ENTRY_POINT_GROUP = "temporal_triggers.providers"


def every_field(config: BaseModel) -> dict[str, Any]:
    """A provider that declares no destination fields: its whole config counts."""
    return dict(config.model_dump(mode="json"))


@dataclass(frozen=True)
class ProviderInfo:
    """What the API needs to know about a provider to validate a trigger."""

    name: str
    config_model: type[BaseModel]
    required_secrets: frozenset[str] = field(default_factory=frozenset)
    optional_secrets: frozenset[str] = field(default_factory=frozenset)
    # Any secret name matching this regular expression is allowed too (user-named secrets).
    secret_pattern: str | None = None
    secret_pattern_help: str | None = None
    # The loop that produces events; None for push providers (webhooks arrive over HTTP).
    source: type[SourceProvider] | None = None
    # Events arrive over HTTP at ``/webhooks/{preset}/{trigger id}`` (the webhook route).
    receives_webhooks: bool = False
    # The config field that holds the overlap policy ("allow" or "skip": no new run while
    # the previous one is still running); None: the provider has none, runs always start.
    overlap_field: str | None = None
    # The part of a validated config that decides where the trigger connects and where its
    # secrets go (see ``SourceProvider.destination_fields``); the whole config by default.
    destinations: Callable[[BaseModel], dict[str, Any]] = every_field
    # The source is a push stream (``StreamProvider``): run by the stream runtime, as one
    # long-lived activity.
    stream: bool = False

    @classmethod
    def of(cls, provider: type[SourceProvider]) -> ProviderInfo:
        from triggers.providers.stream import StreamProvider

        return cls(
            stream=issubclass(provider, StreamProvider),
            name=provider.name,
            config_model=provider.Config,
            required_secrets=provider.required_secrets,
            optional_secrets=provider.optional_secrets,
            secret_pattern=provider.secret_pattern,
            secret_pattern_help=provider.secret_pattern_help,
            source=provider,
            destinations=provider.destinations,
            overlap_field=provider.overlap_field,
        )

    @property
    def runs_source(self) -> bool:
        """Whether the trigger workflow runs a source loop for this provider's triggers."""
        return self.source is not None

    def overlap_policy(self, config: Mapping[str, Any]) -> str:
        """The overlap policy of a (validated, stored) config: "allow" unless declared."""
        if self.overlap_field is None:
            return "allow"
        return str(config.get(self.overlap_field, "allow"))

    @property
    def allowed_secrets(self) -> frozenset[str]:
        return self.required_secrets | self.optional_secrets

    def changed_destinations(self, before: BaseModel, after: BaseModel) -> list[str]:
        """The destination fields whose values differ between two configs, in order."""
        old, new = self.destinations(before), self.destinations(after)
        names = dict.fromkeys([*new, *old])
        return [name for name in names if old.get(name) != new.get(name)]

    def allows_secret(self, name: str) -> bool:
        if name in self.allowed_secrets:
            return True
        return (
            self.secret_pattern is not None and re.fullmatch(self.secret_pattern, name) is not None
        )


class UnknownProvider(LookupError):
    pass


_registry: dict[str, ProviderInfo] = {}
_loaded = False


def register(info: ProviderInfo) -> None:
    _registry[info.name] = info


# The built-in providers: each module's ``info``. Installed packages add theirs through
# entry points; a plugin never replaces a built-in of the same name.
BUILTINS = (
    "triggers.providers.webhook",
    "triggers.providers.cron",
    "triggers.providers.http_poll",
    "triggers.providers.sql_poll",
    "triggers.providers.kafka",
    "triggers.providers.redis_streams",
)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in BUILTINS:
        register(importlib.import_module(module).info)
    from triggers.providers.base import SourceProvider

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj: Any = ep.load()
        if isinstance(obj, type) and issubclass(obj, SourceProvider):
            obj = ProviderInfo.of(obj)
        info = getattr(obj, "info", obj)
        if isinstance(info, ProviderInfo):
            _registry.setdefault(info.name, info)


def reload() -> None:
    """Look at the installed entry points again (after installing a provider package)."""
    global _loaded
    _loaded = False
    _load()


def get_provider(name: str) -> ProviderInfo:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownProvider(name) from None


def find_provider(name: str) -> ProviderInfo | None:
    """The provider of that name, or None (e.g. a plugin no longer installed)."""
    try:
        return get_provider(name)
    except UnknownProvider:
        return None


def provider_names() -> list[str]:
    _load()
    return sorted(_registry)
