"""HTTP benchmarks: data-bridge against FastAPI/uvicorn, raw ASGI, Granian and Robyn."""
