"""The yardstick: the least a FastAPI endpoint on uvicorn can do per request."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}
