"""The builder page: server-rendered HTML (Jinja templates in ``templates/``) with a little
JavaScript of our own (``static/``), served by the API app itself and calling the same
services as ``/api``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.ui import create, edit, live, pages
from api.ui.web import HERE, FormTooLarge, SignInNeeded, page, redirect


async def _sign_in(request: Request, _exc: Exception) -> Response:
    if request.url.path.endswith(("/live", "/capture", "/dry-run", "/check-condition")):
        return Response('{"detail": "sign in first"}', 401, media_type="application/json")
    return redirect("/ui/signin")


async def _too_large(request: Request, _exc: Exception) -> Response:
    return page(
        request,
        "error.html",
        {"code": 413, "message": "the form is too large", "me": None, "csrf": ""},
        status_code=413,
    )


def install(app: FastAPI) -> None:
    # The live and edit routes first: the trigger page's ``/{action}`` posts would match.
    app.include_router(live.router)
    app.include_router(edit.router)
    app.include_router(pages.router)
    app.include_router(create.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(FormTooLarge, _too_large)
