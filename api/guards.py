"""Who may point a trigger where: secrets stay bound to the destinations their owner chose."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError

from triggers.models import Trigger
from triggers.providers import ProviderInfo


def changed_destinations(info: ProviderInfo, trigger: Trigger, config: BaseModel) -> list[str]:
    """The provider's destination fields that ``config`` changes on ``trigger``. A stored
    config that no longer validates counts as changed everywhere."""
    try:
        before = info.config_model.model_validate(trigger.config)
    except ValidationError:
        return list(info.destinations(config))
    return info.changed_destinations(before, config)


def require_secrets_again(
    changed: Sequence[str], *, kept: Collection[str], resupplied: Collection[str]
) -> None:
    """Someone other than the owner changes where the secrets go: every secret the trigger
    keeps must be given again in the same request, or the change is refused (403)."""
    missing = sorted(set(kept) - set(resupplied))
    if not changed or not missing:
        return
    field = changed[0]
    msg = (
        f"config.{field} decides where this trigger's secrets are sent: only its owner may "
        f"change it without them; give {', '.join(missing)} again in secrets (or remove "
        "them with null) in the same request"
    )
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        [{"loc": ["body", "config", field], "msg": msg, "type": "secrets_required"}],
    )
