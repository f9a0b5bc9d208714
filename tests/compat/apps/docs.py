"""What the OpenAPI document says: tags, summaries and descriptions (docstrings cut at a
form feed), ``deprecated``, ``responses=``, ``include_in_schema=False``, operation ids,
``openapi_extra``, response models (with input and output schemas that differ),
aliases, constraints, enums, nested models, several bodies, and routers' tags,
prefixes, responses and hidden routers."""

import datetime
import enum
import uuid
from typing import Annotated, Any, Literal

import pydantic

from tests.compat.corpus import Call


class Color(str, enum.Enum):
    red = "red"
    green = "green"


class Dimensions(pydantic.BaseModel):
    """A box's size.\fNot for readers of the API."""

    width: float = pydantic.Field(gt=0, description="In metres")
    height: float = 1.0


class Product(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)

    name: str = pydantic.Field(min_length=1, max_length=40, examples=["pen"])
    product_id: uuid.UUID | None = pydantic.Field(default=None, alias="productId")
    color: Color = Color.red
    size: Dimensions | None = None
    tags: set[str] = set()
    created: datetime.datetime | None = None


class Priced(pydantic.BaseModel):
    name: str
    price: float

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def with_tax(self) -> float:
        return round(self.price * 1.2, 2)


class Problem(pydantic.BaseModel):
    message: str
    code: int = 0


def paging(offset: Annotated[int, pydantic.Field(ge=0)] = 0, limit: int = 10) -> dict[str, int]:
    return {"offset": offset, "limit": limit}


def build(api: Any) -> Any:
    app = api.App(
        version="2.1.0",
        description="A shop, *documented*.",
        summary="Products and orders",
        openapi_tags=[{"name": "products", "description": "What we sell"}],
        servers=[{"url": "https://shop.example.com", "description": "Production"}],
        contact={"name": "Shop", "email": "shop@example.com"},
        license_info={"name": "MIT", "identifier": "MIT"},
        terms_of_service="https://shop.example.com/terms",
    )

    products = api.APIRouter(
        prefix="/products",
        tags=["products"],
        responses={404: {"description": "No such product", "model": Problem}},
    )

    @products.get("/", summary="List products", response_description="The products")
    def list_products(
        page: Annotated[dict[str, int], api.Depends(paging)],
        color: Color | None = None,
        q: Annotated[
            str | None,
            api.Query(
                min_length=2,
                max_length=20,
                pattern="^[a-z]+$",
                description="Search text",
                examples=["pen"],
            ),
        ] = None,
        sort: Literal["name", "price"] = "name",
        legacy: Annotated[str | None, api.Query(deprecated=True)] = None,
        secret: Annotated[str | None, api.Query(include_in_schema=False)] = None,
    ) -> list[Product]:
        """Every product, a page at a time.

        Filter by colour or text.
        \f
        Internal: reads the catalogue."""
        return []

    @products.get("/{product_id}", response_model=Product)
    def get_product(
        product_id: Annotated[uuid.UUID, api.Path(title="Product ID")],
        x_request_id: Annotated[str | None, api.Header()] = None,
        session: Annotated[str | None, api.Cookie(alias="sid")] = None,
    ) -> Any:
        return {"name": "pen", "productId": str(product_id)}

    @products.post(
        "/",
        status_code=201,
        response_model=Priced,
        responses={409: {"description": "Already there"}, "4XX": {"model": Problem}},
    )
    def create_product(product: Product) -> Any:
        return {"name": product.name, "price": 2.0}

    @products.put("/{product_id}", operation_id="replaceProduct", deprecated=True)
    def replace_product(
        product_id: int,
        product: Product,
        size: Dimensions,
        note: Annotated[str, api.Body(max_length=100)],
        urgent: Annotated[bool, api.Body()] = False,
    ) -> dict[str, Any]:
        return {"id": product_id}

    @products.patch("/{product_id}/size")
    def resize(product_id: int, size: Annotated[Dimensions, api.Body(embed=True)]) -> Dimensions:
        return size

    @products.delete("/{product_id}", status_code=204)
    def delete_product(product_id: int) -> None:
        return None

    @products.get("/{product_id}/hidden", include_in_schema=False)
    def hidden(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    orders = api.APIRouter()

    @orders.post("/", description="Place an order.", tags=["checkout"])
    def place(
        items: list[Product],
        coupon: Annotated[str | None, api.Body()] = None,
    ) -> dict[str, int]:
        return {"count": len(items)}

    @orders.get("/price", openapi_extra={"x-cache": "none"})
    def price(amount: Priced) -> Priced:
        return amount

    internal = api.APIRouter(include_in_schema=False)

    @internal.get("/internal/stats")
    def stats() -> dict[str, int]:
        return {"n": 1}

    old = api.APIRouter(deprecated=True)

    @old.get("/v0/ping")
    def old_ping() -> str:
        return "pong"

    @app.get("/page", response_class=api.HTMLResponse, tags=["pages"])
    def page() -> str:
        return "<p>shop</p>"

    @app.get("/robots.txt", response_class=api.PlainTextResponse)
    def robots() -> str:
        return "User-agent: *"

    @app.get("/files/{file_path:path}", responses={"default": {"description": "Anything"}})
    def files(file_path: str) -> dict[str, str]:
        return {"path": file_path}

    @app.get("/health/deep", response_model=None)
    async def deep_health() -> Any:
        return {"ok": True}

    app.include_router(products)
    app.include_router(
        orders,
        prefix="/orders",
        tags=["orders"],
        responses={402: {"description": "Payment required"}},
    )
    app.include_router(internal)
    app.include_router(old)
    return app


PRODUCT = {"name": "pen", "productId": "6f1c2a3e-0000-4000-8000-000000000001"}

REQUESTS = [
    Call("GET", "/products/"),
    Call("GET", "/products/?q=X&sort=cost&offset=-1"),
    Call("GET", "/products/6f1c2a3e-0000-4000-8000-000000000001"),
    Call("POST", "/products/", json=PRODUCT),
    Call("POST", "/products/", json={"name": ""}),
    Call("PUT", "/products/3", json={"product": PRODUCT, "size": {"width": 1}, "note": "n"}),
    Call("PATCH", "/products/3/size", json={"size": {"width": 2}}),
    Call("PATCH", "/products/3/size", json={"width": 2}),
    Call("DELETE", "/products/3"),
    Call("GET", "/products/3/hidden"),
    Call("POST", "/orders/", json={"items": [PRODUCT]}),
    Call("GET", "/internal/stats"),
    Call("GET", "/v0/ping"),
    Call("GET", "/page"),
    Call("GET", "/robots.txt"),
    Call("GET", "/files/a/b.txt"),
    Call("GET", "/health/deep"),
]
