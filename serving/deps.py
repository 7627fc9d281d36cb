"""Annotated dependencies shared by routers."""

from __future__ import annotations

from fastapi import Request

from serving.state import ServingState


async def get_state(request: Request) -> ServingState:
    return request.app.state.serving
