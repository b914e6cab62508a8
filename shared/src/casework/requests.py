"""FastAPI dependencies every service's routes use to turn a request into a command."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from casework.eventstore import CommitContext


def commit_context(request: Request) -> CommitContext:
    """Correlate the events of this command with the request that caused them."""
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    return CommitContext(correlation_id=request_id, causation_id=request_id)


Context = Annotated[CommitContext, Depends(commit_context)]


def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            description="The version (ETag) the change is based on; 412 if it is stale",
            examples=['"3"'],
        ),
    ] = None,
) -> int | None:
    """The version named by `If-Match` (an ETag such as `"3"`), or None."""
    if if_match is None or if_match.strip() == "*":
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise HTTPException(
            status_code=400, detail='If-Match must be a version ETag, such as "3"'
        ) from None


IfMatch = Annotated[int | None, Depends(expected_version)]
