"""The web console: server-rendered pages for people, signed in through OpenID Connect.

Mounted by the API (``install_console``) under ``/console``; it reads and changes
incidents only through the JSON API's own route functions and role checks.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from config import Settings
from console import auth_routes, decisions, pages
from console.access import CsrfRefused, SignInRequired
from console.errors import install_error_pages
from console.render import render
from console.sessions import SESSION_COOKIE, SessionProblem, SessionStore


def install_console(app: FastAPI, engine: Engine, settings: Settings) -> None:
    app.state.console_sessions = SessionStore(engine, settings)
    install_error_pages(app)  # before the handlers below, which answer pages already
    for module in (auth_routes, pages, decisions):
        app.include_router(module.router)
    app.mount(
        "/console/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="console-static",
    )

    @app.get("/console", include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse("/console/", status.HTTP_308_PERMANENT_REDIRECT)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, error: SignInRequired) -> Response:
        """Anyone without a live session sees the sign-in page and nothing else."""
        problem = None if error.problem is SessionProblem.NONE else error.problem.value
        next_path = request.url.path if request.method == "GET" else None
        response = render(
            request,
            "sign_in.html",
            None,
            status_code=status.HTTP_401_UNAUTHORIZED,
            problem=problem,
            next=next_path or "/console/",
        )
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        return render(
            request,
            "message.html",
            None,
            status_code=status.HTTP_403_FORBIDDEN,
            title="Form refused",
            message="This form did not carry your session's CSRF token, so it may not have "
            "come from your console page. Nothing was changed; reload the page and try again.",
        )
