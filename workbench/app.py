"""The review web app (FastAPI over the SQLite store): review and adjudication pages and their JSON API.

Every request names its reviewer by token (X-Reviewer-Token header, or ?token= on the pages); an
unknown token is answered 401. Each request opens its own connection, so every action is committed
before its answer is sent.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Iterator

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from promedical.workbench import adjudication, review
from promedical.workbench.store import connect, reviewer_for

PAGES = {"review": "review.html", "adjudicate": "adjudicate.html"}


class CriterionChange(BaseModel):
    version: int
    changes: dict[str, Any]


class Verdict(BaseModel):
    version: int
    verdict: str


class Vote(BaseModel):
    criterion_id: str
    choice: str


def _page(name: str) -> str:
    return (files("promedical.workbench") / "static" / PAGES[name]).read_text(encoding="utf-8")


def create_app(db_path: str | Path) -> FastAPI:
    app = FastAPI(title="ProMedical rubric workbench", docs_url=None, redoc_url=None, openapi_url=None)

    def db() -> Iterator[Any]:
        conn = connect(db_path)
        try:
            yield conn
        finally:
            conn.close()

    def who(conn: Any = Depends(db), x_reviewer_token: str | None = Header(default=None),
            token: str | None = Query(default=None)) -> tuple[Any, str]:
        name = reviewer_for(conn, x_reviewer_token or token)
        if name is None:
            raise HTTPException(401, "unknown reviewer token; ask for yours with: promedical rubrics reviewer DB NAME")
        return conn, name

    def guarded(action: Callable[[], dict]) -> Any:
        try:
            return action()
        except review.ReviewError as exc:
            return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    @app.get("/review", response_class=HTMLResponse)
    def review_page(me: tuple = Depends(who)) -> str:
        return _page("review")

    @app.get("/adjudicate", response_class=HTMLResponse)
    def adjudicate_page(me: tuple = Depends(who)) -> str:
        return _page("adjudicate")

    @app.get("/api/review")
    def current_item(me: tuple = Depends(who)) -> Any:
        return guarded(lambda: review.current(*me))

    @app.post("/api/review/{item_id}/criteria/{criterion_id}")
    def change(item_id: int, criterion_id: str, body: CriterionChange, me: tuple = Depends(who)) -> Any:
        return guarded(lambda: review.change_criterion(*me, item_id, body.version, criterion_id, body.changes))

    @app.post("/api/review/{item_id}/verdict")
    def verdict(item_id: int, body: Verdict, me: tuple = Depends(who)) -> Any:
        return guarded(lambda: review.finish(*me, item_id, body.version, body.verdict))

    @app.get("/api/adjudicate")
    def current_pair(me: tuple = Depends(who)) -> Any:
        return guarded(lambda: adjudication.current_pair(*me))

    @app.post("/api/adjudicate/{pair_id}/vote")
    def vote(pair_id: int, body: Vote, me: tuple = Depends(who)) -> Any:
        return guarded(lambda: adjudication.vote(*me, pair_id, body.criterion_id, body.choice))

    @app.post("/api/adjudicate/{pair_id}/done")
    def done(pair_id: int, me: tuple = Depends(who)) -> Any:
        return guarded(lambda: adjudication.finish_pair(*me, pair_id))

    return app


def serve(db_path: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app until interrupted; loopback unless a host is given on purpose."""
    import uvicorn

    connect(db_path).close()
    uvicorn.run(create_app(db_path), host=host, port=port, log_level="warning")
