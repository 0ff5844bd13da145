"""A small service built with servicekit's defaults, for the tests of those defaults."""

from __future__ import annotations

from typing import ClassVar

from fastapi import APIRouter, FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit import Problem, ServiceSettings, create_service_app
from servicekit.models import ApiModel, CaseInsensitiveEnum
from servicekit.stores.errors import StoreUnavailableError


class SampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")
    service_name: ClassVar[str] = "sample"
    store_url: str = "sqlite:///.data/sample.db"


class Colour(CaseInsensitiveEnum):
    RED = "Red"
    GREEN = "Green"


class Paint(ApiModel):
    colour: Colour
    litres: float = Field(gt=0)
    owner_id: str


router = APIRouter()


@router.post("/paint")
async def paint(body: Paint) -> Paint:
    return body


@router.get("/paint/catalogue")
async def catalogue() -> list[str]:
    """A concrete path beside the templated /paint/{id}, as /api/packages/summary is."""
    return ["red", "green"]


@router.get("/paint/{id}")
async def get_paint(id: str) -> dict[str, str]:
    return {"id": id}


@router.delete("/paint/{id}", status_code=204)
async def remove_paint(id: str) -> None:
    """A second route on the same path, as FastAPI makes one route per method."""


@router.get("/teapot")
async def teapot() -> None:
    raise Problem(418, "Short and stout.", kind="teapot")


@router.get("/crash")
async def crash() -> None:
    raise RuntimeError("connection string Password=hunter2 leaked")


@router.get("/store-down")
async def store_down() -> None:
    raise StoreUnavailableError("timed out")


def create_app(settings: SampleSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or SampleSettings(), title="sample", version="1.0", routers=[router]
    )


app = create_app()
