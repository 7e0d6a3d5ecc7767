"""What the API shows of a trigger: its row without secrets (only their names)."""

from __future__ import annotations

from api.schemas import TriggerPublic
from api.state import AppState
from triggers.core.events import trigger_workflow_id
from triggers.infra.models import Trigger


def to_public(state: AppState, trigger: Trigger, role: str) -> TriggerPublic:
    secret_names = sorted(state.secret_box.decrypt(trigger.secrets_encrypted))
    webhook_url = None
    if trigger.provider == "webhook":
        preset = trigger.config.get("preset", "generic")
        webhook_url = f"{state.settings.base_url}/webhooks/{preset}/{trigger.id}"
    return TriggerPublic(
        id=trigger.id,
        name=trigger.name,
        provider=trigger.provider,
        config=trigger.config,
        target=trigger.target,
        condition=(trigger.condition or {}).get("expression"),
        enabled=trigger.enabled,
        status=trigger.status,
        last_error=trigger.last_error,
        config_version=trigger.config_version,
        secret_names=secret_names,
        owner_id=trigger.user_id,
        network_principal_id=trigger.network_principal_id,
        target_principal_id=trigger.target_principal_id,
        role=role,
        webhook_url=webhook_url,
        workflow_id=trigger_workflow_id(str(trigger.id)),
        created_at=trigger.created_at,
        updated_at=trigger.updated_at,
    )
