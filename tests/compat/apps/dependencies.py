"""``Depends``: sub-dependencies, per-request caching, classes as dependencies, yield
dependencies, and dependencies on routes, routers and the app."""

from typing import Annotated, Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    calls: list[str] = []

    def count() -> int:
        calls.append("count")
        return len(calls)

    def paging(skip: int = 0, limit: Annotated[int, api.Query(le=50)] = 10) -> dict[str, int]:
        return {"skip": skip, "limit": limit}

    async def user(x_user: Annotated[str, api.Header()]) -> str:
        return x_user

    def admin(name: Annotated[str, api.Depends(user)]) -> str:
        if name != "root":
            raise api.HTTPException(403, "admins only", headers={"X-Reason": "role"})
        return name

    class Filter:
        def __init__(self, q: str | None = None, exact: bool = False) -> None:
            self.q = q
            self.exact = exact

    def session() -> Any:
        yield {"open": True}

    async def resource() -> Any:
        yield "res"

    def key(key: str = api.Query()) -> str:
        return key

    app = api.App(dependencies=[api.Depends(count)])

    @app.get("/page")
    def page(p: Annotated[dict[str, int], api.Depends(paging)]) -> dict[str, int]:
        return p

    @app.get("/me")
    async def me(name: Annotated[str, api.Depends(user)], p: dict = api.Depends(paging)) -> Any:
        return {"name": name, **p}

    @app.get("/admin")
    def admin_area(name: Annotated[str, api.Depends(admin)]) -> Any:
        return {"admin": name}

    @app.get("/filter")
    def filt(f: Annotated[Filter, api.Depends()]) -> Any:
        return {"q": f.q, "exact": f.exact}

    @app.get("/cached")
    def cached(a: Annotated[str, api.Depends(user)], b: Annotated[str, api.Depends(user)]) -> Any:
        return {"same": a == b}

    @app.get("/yield")
    async def with_yield(s: Any = api.Depends(session), r: str = api.Depends(resource)) -> Any:
        return {"session": s, "resource": r}

    @app.get("/guarded", dependencies=[api.Depends(admin)])
    def guarded() -> dict[str, bool]:
        return {"ok": True}

    router = api.APIRouter(dependencies=[api.Depends(key)])

    @router.get("/inside")
    def inside(k: str = api.Depends(key)) -> dict[str, str]:
        return {"key": k}

    app.include_router(router, prefix="/secure")
    return app


REQUESTS = [
    Call("GET", "/page?skip=3"),
    Call("GET", "/page?limit=60"),
    Call("GET", "/me?limit=5", headers={"X-User": "ann"}),
    Call("GET", "/me?limit=500"),
    Call("GET", "/admin", headers={"X-User": "root"}),
    Call("GET", "/admin", headers={"X-User": "bob"}),
    Call("GET", "/admin"),
    Call("GET", "/filter?q=x&exact=true"),
    Call("GET", "/filter?exact=nah"),
    Call("GET", "/cached", headers={"X-User": "ann"}),
    Call("GET", "/cached"),
    Call("GET", "/yield"),
    Call("GET", "/guarded", headers={"X-User": "root"}),
    Call("GET", "/guarded", headers={"X-User": "eve"}),
    Call("GET", "/secure/inside?key=k1"),
    Call("GET", "/secure/inside"),
]
