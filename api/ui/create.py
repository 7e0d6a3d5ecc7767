"""Creating a trigger: pick a provider, fill the form generated from its config JSON Schema
(``GET /api/providers/{name}``), and the trigger lifecycle service creates it; the API's
validation errors are shown next to the field they name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from api.routes.providers import provider_detail
from api.schemas import TriggerCreate
from api.services import triggers as lifecycle
from api.ui import forms
from api.ui.forms import NAMED_SECRET_SLOTS, Field, Values
from api.ui.web import SignedDep, error_page, page, posted, redirect
from api.validation import clean_errors
from triggers.providers import ProviderInfo, find_provider, provider_names

router = APIRouter(include_in_schema=False)

TARGET_FIELDS = ("target.kind", "target.workflow_type", "target.task_queue", "target.input")
FIXED_FIELDS = ("name", "enabled", "condition", "secrets", "config", "target", "target.graph")


def _provider(name: str) -> ProviderInfo | None:
    return find_provider(name[:64])


def fields_of(info: ProviderInfo) -> list[Field]:
    return forms.config_fields(provider_detail(info).config_schema)


def _render(
    request: Request, signed: SignedDep, info: ProviderInfo, form: Values, code: int = 200
) -> Response:
    detail = provider_detail(info)
    return page(
        request,
        "create.html",
        {
            "me": signed.user,
            "csrf": signed.session.csrf,
            "provider": detail,
            "fields": fields_of(info),
            "secret_names": sorted(info.allowed_secrets),
            "required_secrets": info.required_secrets,
            "named_slots": range(NAMED_SECRET_SLOTS) if info.secret_pattern else range(0),
            "form": form,
        },
        status_code=code,
    )


@router.get("/ui/new")
async def pick_provider(request: Request, signed: SignedDep) -> Response:
    infos = [i for i in (find_provider(n) for n in provider_names()) if i is not None]
    return page(
        request,
        "pick.html",
        {
            "me": signed.user,
            "csrf": signed.session.csrf,
            "providers": [provider_detail(i) for i in infos],
        },
    )


@router.get("/ui/new/{provider}")
async def create_page(request: Request, signed: SignedDep, provider: str) -> Response:
    info = _provider(provider)
    if info is None:
        return error_page(request, 404, "provider not found", signed)
    return _render(request, signed, info, Values(values={"enabled": "on"}))


def _secrets(info: ProviderInfo, form: Values) -> dict[str, str]:
    out = {}
    for name in sorted(info.allowed_secrets):
        value = form.values.get(f"secret.{name}", "")
        if value:
            out[name] = value
    for slot in range(NAMED_SECRET_SLOTS if info.secret_pattern else 0):
        name = form.values.get(f"secret_name.{slot}", "").strip()
        value = form.values.get(f"secret_value.{slot}", "")
        if name or value:
            out[name] = value
    return out


def target_of(form: Values) -> dict[str, Any]:
    kind = form.values.get("target.kind", "run") or "run"
    target: dict[str, Any] = {"kind": kind}
    if kind == "workflow":
        for name in ("workflow_type", "task_queue", "input"):
            value = form.values.get(f"target.{name}", "").strip()
            if value:
                target[name] = value
    elif kind == "graph":
        given, graph = forms.parse_json(form, "target.graph")
        target["graph"] = graph if given else None
    return target


def body_of(info: ProviderInfo, form: Values) -> dict[str, Any]:
    """The create body the API takes, from the form's values."""
    body: dict[str, Any] = {
        "name": form.values.get("name", "").strip(),
        "provider": info.name,
        "config": forms.config_of(fields_of(info), form),
        "secrets": _secrets(info, form),
        "target": target_of(form),
        "enabled": form.values.get("enabled") == "on",
    }
    condition = form.values.get("condition", "").strip()
    if condition:
        body["condition"] = condition
    return body


def show_errors(info: ProviderInfo, form: Values, errors: list[dict[str, Any]]) -> None:
    known = [f.name for f in fields_of(info)] + list(TARGET_FIELDS) + list(FIXED_FIELDS)
    for err in errors:
        form.error(forms.field_of_loc(err.get("loc", ()), known), str(err.get("msg", "")))


@router.post("/ui/new/{provider}")
async def create(request: Request, signed: SignedDep, provider: str) -> Response:
    form = await posted(request, signed)
    info = _provider(provider)
    if info is None:
        return error_page(request, 404, "provider not found", signed)
    raw = body_of(info, form)
    if form.errors:
        return _render(request, signed, info, form, 422)
    try:
        body = TriggerCreate.model_validate(raw)
    except ValidationError as exc:
        show_errors(
            info, form, clean_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
        )
        return _render(request, signed, info, form, 422)
    try:
        trigger = await lifecycle.create(signed.state, signed.db, signed.user, body)
    except RequestValidationError as exc:
        show_errors(info, form, clean_errors(exc.errors()))
        return _render(request, signed, info, form, 422)
    except HTTPException as exc:
        form.error("", str(exc.detail))
        return _render(request, signed, info, form, exc.status_code)
    return redirect(f"/ui/triggers/{trigger.id}")
