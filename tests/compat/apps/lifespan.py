"""A lifespan whose yielded state reaches ``request.state`` (a fresh copy per request)."""

import contextlib
from typing import Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield {"db": "ready", "hits": []}

    app = api.App(lifespan=lifespan)

    @app.get("/state")
    def state(request: api.Request) -> dict[str, Any]:
        request.state.hits.append(1)  # shallow copy: the list is shared
        request.state.db = "changed"  # but rebinding stays in this request
        return {"hits": len(request.state.hits)}

    @app.get("/db")
    async def db(request: api.Request) -> dict[str, Any]:
        return {"db": request.state.db, "missing": hasattr(request.state, "nope")}

    return app


REQUESTS = [
    Call("GET", "/state"),
    Call("GET", "/state"),
    Call("GET", "/db"),
]
