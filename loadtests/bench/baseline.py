"""The benchmark's baseline: the least a FastAPI service behind the gateway can do, a constant answer.

Served by uvicorn exactly as the services are and behind the same nginx configuration, it shows
what the machine, nginx, uvicorn and FastAPI cost; the system's numbers are divided by its.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="Drone Delivery benchmark baseline")

CONSTANT = {"id": "baseline", "stage": "Scheduled", "droneId": "drone-001"}


@app.get("/api/deliveries/{id}")
async def constant(id: str) -> dict[str, str]:
    return CONSTANT
