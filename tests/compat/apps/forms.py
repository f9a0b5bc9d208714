"""Forms and file uploads: urlencoded fields, multipart fields and files, repeated
files, an optional file, a file's content as ``bytes``, a model of form fields, the
OAuth2 password form, invalid and missing fields, and JSON sent to a form route."""

from typing import Annotated, Any

import pydantic

from tests.compat.corpus import Call


class Signup(pydantic.BaseModel):
    username: str
    age: int = pydantic.Field(ge=0)
    tags: list[str] = []
    newsletter: bool = False


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str


async def describe(upload: Any) -> dict[str, Any]:
    content = await upload.read()
    return {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "content": content.decode(),
    }


def build(api: Any) -> Any:
    app = api.App()
    sec = api.security

    @app.post("/login")
    def login(
        username: Annotated[str, api.Form()],
        password: Annotated[str, api.Form(min_length=3)],
        remember: Annotated[bool, api.Form()] = False,
    ) -> dict[str, Any]:
        return {"username": username, "password": password, "remember": remember}

    @app.post("/colors")
    def colors(color: Annotated[list[str], api.Form()], q: str | None = None) -> Any:
        return {"color": color, "q": q}

    @app.post("/upload")
    async def upload(
        file: api.UploadFile, note: Annotated[str, api.Form()], count: Annotated[int, api.Form()]
    ) -> dict[str, Any]:
        return {"file": await describe(file), "note": note, "count": count}

    @app.post("/uploads")
    async def uploads(files: list[api.UploadFile]) -> list[dict[str, Any]]:
        return [await describe(f) for f in files]

    @app.post("/optional-file")
    async def optional_file(
        file: Annotated[api.UploadFile | None, api.File(description="Anything")] = None,
    ) -> dict[str, Any]:
        return {"file": None if file is None else await describe(file)}

    @app.post("/bytes")
    def as_bytes(data: Annotated[bytes, api.File()], tag: Annotated[str, api.Form()] = "x") -> Any:
        return {"size": len(data), "head": data[:5].decode(), "tag": tag}

    @app.post("/bytes-list")
    def bytes_list(parts: Annotated[list[bytes], api.File()]) -> Any:
        return {"sizes": [len(p) for p in parts]}

    @app.post("/signup")
    def signup(form: Annotated[Signup, api.Form()]) -> Signup:
        return form

    @app.post("/strict")
    def strict(form: Annotated[Strict, api.Form()]) -> Any:
        return form.model_dump()

    @app.post("/token")
    def token(form: Annotated[sec.OAuth2PasswordRequestForm, api.Depends()]) -> Any:
        return {
            "username": form.username,
            "password": form.password,
            "scopes": form.scopes,
            "grant_type": form.grant_type,
            "client_id": form.client_id,
        }

    @app.post("/token-strict")
    def token_strict(
        form: Annotated[sec.OAuth2PasswordRequestFormStrict, api.Depends()],
    ) -> Any:
        return {"username": form.username, "grant_type": form.grant_type}

    @app.post("/raw-form")
    async def raw_form(request: api.Request) -> Any:
        # As a context manager: Starlette closes the files only then.
        async with request.form() as form:
            return {
                key: [v if isinstance(v, str) else v.filename for v in form.getlist(key)]
                for key in form
            }

    return app


def text(name: str, content: str, kind: str = "text/plain") -> tuple[str, Any]:
    return (name, (f"{name}.txt", content.encode(), kind))


REQUESTS = [
    Call("POST", "/login", data={"username": "ann", "password": "secret"}),
    Call("POST", "/login", data={"username": "ann", "password": "secret", "remember": "yes"}),
    Call("POST", "/login", data={"username": "ann", "password": "ab", "remember": "maybe"}),
    Call("POST", "/login", data={"username": "", "password": "secret"}),
    Call("POST", "/login", data={"password": "secret"}),
    Call("POST", "/login"),
    Call("POST", "/login", json={"username": "ann", "password": "secret"}),
    Call("POST", "/login", content=b"username=ann", headers={"content-type": "text/plain"}),
    Call("POST", "/login", files=[text("username", "ann")], data={"password": "secret"}),
    Call(
        "POST",
        "/login",
        content=b"username=a%20b+c&password=p%26q",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Call("POST", "/colors?q=1", data={"color": ["red", "green"]}),
    Call("POST", "/colors", data={"color": "blue"}),
    Call("POST", "/colors", data={}),
    Call("POST", "/upload", files=[text("file", "hello world")], data={"note": "hi", "count": "3"}),
    Call("POST", "/upload", files=[text("file", "x", "application/json")], data={"note": "n"}),
    Call("POST", "/upload", data={"file": "not a file", "note": "n", "count": "x"}),
    Call("POST", "/upload", data={"note": "n", "count": "1"}),
    Call(
        "POST",
        "/upload",
        files=[("file", ("", b"", "application/octet-stream"))],
        data={"note": "n", "count": "1"},
    ),
    Call("POST", "/uploads", files=[text("files", "one"), text("files", "two")]),
    Call("POST", "/uploads", files=[text("files", "only")]),
    Call("POST", "/uploads", data={"other": "x"}),
    Call("POST", "/optional-file"),
    Call("POST", "/optional-file", files=[text("file", "present")]),
    Call("POST", "/bytes", files=[text("data", "bytes content")], data={"tag": "t"}),
    Call("POST", "/bytes", files=[text("data", "abc")]),
    Call("POST", "/bytes", data={"data": "sent as text"}),
    Call("POST", "/bytes", data={"tag": "t"}),
    Call("POST", "/bytes-list", files=[text("parts", "a"), text("parts", "bcd")]),
    Call("POST", "/signup", data={"username": "ann", "age": "30", "tags": ["a", "b"]}),
    Call("POST", "/signup", data={"username": "ann", "age": "-1", "newsletter": "on"}),
    Call("POST", "/signup", data={"age": "x"}),
    Call("POST", "/signup", data={"username": "ann", "age": "3", "extra": "kept?"}),
    Call("POST", "/signup"),
    Call("POST", "/strict", data={"name": "a"}),
    Call("POST", "/strict", data={"name": "a", "other": ["1", "2"]}),
    Call("POST", "/token", data={"username": "ann", "password": "pw", "scope": "me items"}),
    Call(
        "POST",
        "/token",
        data={"username": "ann", "password": "pw", "grant_type": "password", "client_id": "c"},
    ),
    Call("POST", "/token", data={"username": "ann", "password": "pw", "grant_type": "other"}),
    Call("POST", "/token", data={"username": "ann"}),
    Call("POST", "/token", json={"username": "ann", "password": "pw"}),
    Call("POST", "/token-strict", data={"username": "ann", "password": "pw"}),
    Call(
        "POST",
        "/token-strict",
        data={"username": "ann", "password": "pw", "grant_type": "password"},
    ),
    Call("POST", "/raw-form", data={"a": ["1", "2"], "b": ""}),
    Call("POST", "/raw-form", files=[text("f", "x")], data={"a": "1"}),
    Call("POST", "/raw-form", json={"a": 1}),
    Call(
        "POST",
        "/raw-form",
        content=b"--xyz\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    ),
    Call(
        "POST",
        "/raw-form",
        content=b"--b\r\nno colon here\r\n\r\nv\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    ),
    Call(
        "POST",
        "/raw-form",
        content=b"--x\r\n",
        headers={"content-type": "multipart/form-data"},
    ),
    Call(
        "POST",
        "/upload",
        content=b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    ),
]
