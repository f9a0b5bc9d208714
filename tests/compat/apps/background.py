"""``BackgroundTasks`` in handlers and dependencies; what they did is read back by a
later request (which waits a little for it: the tasks run after the response)."""

import asyncio
from typing import Any

from tests.compat.corpus import Call


def build(api: Any) -> Any:
    done: list[str] = []

    async def remember(what: str) -> None:
        done.append(what)

    def remember_sync(what: str, suffix: str = "") -> None:
        done.append(what + suffix)

    def audit(tasks: api.BackgroundTasks, who: str = "anon") -> str:
        tasks.add_task(remember_sync, "audit:", suffix=who)
        return who

    app = api.App()

    @app.post("/notify", status_code=202)
    async def notify(msg: str, tasks: api.BackgroundTasks) -> dict[str, str]:
        tasks.add_task(remember, msg)
        return {"queued": msg}

    @app.post("/both")
    def both(tasks: api.BackgroundTasks, who: str = api.Depends(audit)) -> Any:
        tasks.add_task(remember_sync, "handler")
        return api.PlainTextResponse(f"hi {who}")

    @app.get("/done")
    async def read_done(n: int) -> list[str]:
        for _ in range(200):
            if len(done) >= n:
                break
            await asyncio.sleep(0.01)
        return done

    return app


REQUESTS = [
    Call("POST", "/notify?msg=one"),
    Call("GET", "/done?n=1"),
    Call("POST", "/notify"),
    Call("POST", "/both?who=ann"),
    Call("GET", "/done?n=3"),
]
