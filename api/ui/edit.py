"""Editing a trigger: the create form (generated from the provider's config schema)
pre-filled with what the trigger has, saved through the trigger lifecycle service's
``update``, which checks everything (the owner and share rules, the secrets a non-owner
must give again when moving a destination); its errors are shown next to the field they
name. Secrets are write-only: an empty field keeps the secret, "remove" clears it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from api.routes.providers import provider_detail
from api.schemas import TargetIn, TriggerUpdate
from api.services import triggers as lifecycle
from api.ui import forms
from api.ui.create import fields_of, show_errors, target_of
from api.ui.forms import NAMED_SECRET_SLOTS, Values
from api.ui.web import SignedDep, error_page, page, posted, redirect
from api.validation import clean_errors
from triggers.infra.models import Trigger
from triggers.providers import ProviderInfo, find_provider

router = APIRouter(include_in_schema=False)


def _secret_names(state: Any, info: ProviderInfo, trigger: Trigger) -> tuple[list[str], set[str]]:
    """The secret fields the form shows (the provider's named ones and those set) and
    which of them are set now. Only names: a value is never read into a page."""
    present = set(state.secret_box.decrypt(trigger.secrets_encrypted))
    return sorted(set(info.allowed_secrets) | present), present


def prefilled(info: ProviderInfo, trigger: Trigger) -> Values:
    """The form's values for what the trigger has now (no secret among them)."""
    values = {"name": trigger.name}
    for f in fields_of(info):
        values[f.name] = forms.text_of(trigger.config.get(f.name.split(".", 1)[1]), f.kind)
    values["condition"] = str((trigger.condition or {}).get("expression") or "")
    target = trigger.target or {}
    values["target.kind"] = str(target.get("kind") or "run")
    for name in ("workflow_type", "task_queue", "input"):
        values[f"target.{name}"] = str(target.get(name) or "")
    if target.get("graph") is not None:
        values["target.graph"] = json.dumps(target["graph"], indent=2)
    return Values(values=values)


def _render(
    request: Request,
    signed: SignedDep,
    info: ProviderInfo,
    trigger: Trigger,
    form: Values,
    code: int = 200,
) -> Response:
    names, present = _secret_names(signed.state, info, trigger)
    return page(
        request,
        "edit.html",
        {
            "me": signed.user,
            "csrf": signed.session.csrf,
            "t": trigger,
            "provider": provider_detail(info),
            "fields": fields_of(info),
            "secret_names": names,
            "secrets_set": present,
            "required_secrets": info.required_secrets,
            "named_slots": range(NAMED_SECRET_SLOTS) if info.secret_pattern else range(0),
            "form": form,
        },
        status_code=code,
    )


def _secrets(form: Values, names: list[str], present: set[str]) -> dict[str, str | None]:
    """What the update sets (a new value) or removes (``None``); left empty: kept."""
    out: dict[str, str | None] = {}
    for name in names:
        if name in present and form.values.get(f"remove.{name}") == "yes":
            out[name] = None
        elif value := form.values.get(f"secret.{name}", ""):
            out[name] = value
    for slot in range(NAMED_SECRET_SLOTS):
        name = form.values.get(f"secret_name.{slot}", "").strip()
        value = form.values.get(f"secret_value.{slot}", "")
        if name or value:
            out[name] = value
    return out


def _normal(model: Any, data: Any) -> Any:
    """``data`` as ``model`` stores it, or ``data`` itself when it does not validate (then
    it counts as changed, and the update says why it is wrong)."""
    try:
        return model.model_validate(data).model_dump(mode="json")
    except (ValidationError, TypeError, ValueError):
        return data


def update_body(state: Any, info: ProviderInfo, trigger: Trigger, form: Values) -> dict[str, Any]:
    """The update the API takes: only what the form changed. ``config`` replaces the whole
    config, so a changed config is sent whole (every field of the form)."""
    body: dict[str, Any] = {}
    name = form.values.get("name", "").strip()
    if name != trigger.name:
        body["name"] = name
    config = forms.config_of(fields_of(info), form)
    if _normal(info.config_model, config) != trigger.config:
        body["config"] = config
    condition = form.values.get("condition", "").strip()
    if condition != ((trigger.condition or {}).get("expression") or ""):
        body["condition"] = condition or None
    target = target_of(form)
    if _normal(TargetIn, target) != trigger.target:
        body["target"] = target
    names, present = _secret_names(state, info, trigger)
    secrets = _secrets(form, names, present)
    if secrets:
        body["secrets"] = secrets
    return body


async def _editable(signed: SignedDep, trigger_id: uuid.UUID) -> tuple[Trigger, ProviderInfo]:
    trigger, _ = await lifecycle.load(signed.db, signed.user, trigger_id, "editor")
    info = find_provider(trigger.provider)
    if info is None:
        raise HTTPException(409, f"provider {trigger.provider!r} is not installed here")
    return trigger, info


@router.get("/ui/triggers/{trigger_id}/edit")
async def edit_page(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    try:
        trigger, info = await _editable(signed, trigger_id)
    except HTTPException as exc:
        return error_page(request, exc.status_code, str(exc.detail), signed)
    return _render(request, signed, info, trigger, prefilled(info, trigger))


def _show(info: ProviderInfo, form: Values, detail: Any) -> None:
    """An HTTP error's detail next to the field it names (else at the form's top)."""
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        show_errors(info, form, detail)
    else:
        form.error("", str(detail))


@router.post("/ui/triggers/{trigger_id}/edit")
async def edit(request: Request, signed: SignedDep, trigger_id: uuid.UUID) -> Response:
    form = await posted(request, signed)
    try:
        trigger, info = await _editable(signed, trigger_id)
    except HTTPException as exc:
        return error_page(request, exc.status_code, str(exc.detail), signed)
    raw = update_body(signed.state, info, trigger, form)
    if form.errors:
        return _render(request, signed, info, trigger, form, 422)
    try:
        body = TriggerUpdate.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        show_errors(info, form, clean_errors(errors))
        return _render(request, signed, info, trigger, form, 422)
    try:
        await lifecycle.update(signed.state, signed.db, signed.user, trigger_id, body)
    except RequestValidationError as exc:
        show_errors(info, form, clean_errors(exc.errors()))
        return _render(request, signed, info, trigger, form, 422)
    except HTTPException as exc:
        if exc.status_code == 404:
            return error_page(request, 404, str(exc.detail), signed)
        _show(info, form, exc.detail)
        # The row is as it was: reload it for the page.
        await signed.db.refresh(trigger)
        return _render(request, signed, info, trigger, form, exc.status_code)
    return redirect(f"/ui/triggers/{trigger_id}")
