"""What every service's routes use to turn a request into a command: dependencies, and the
strict input types (a boolean is `true` or `false`, a date is `YYYY-MM-DD`, nothing that
merely looks like one)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Final

from fastapi import Depends, Header, HTTPException, Request
from pydantic import BeforeValidator, Strict
from pydantic_core import PydanticCustomError

from casework.eventstore import CommitContext


def commit_context(request: Request) -> CommitContext:
    """Correlate the events of this command with the request that caused them."""
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    return CommitContext(correlation_id=request_id, causation_id=request_id)


Context = Annotated[CommitContext, Depends(commit_context)]


IF_MATCH_PATTERN: Final = r'^(\*|(W/)?"[0-9]{1,18}")$'
"""What `If-Match` may be: a version ETag as the API hands them out (`"3"`, or weak `W/"3"`),
or `*` (any version); anything else is refused with 422 naming `header.if-match`."""


def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            description='The version (ETag) the change is based on, e.g. `"3"`; 412 if it is '
            "stale. Without it the change applies to whatever version is current.",
            examples=['"3"'],
            pattern=IF_MATCH_PATTERN,
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


# --- strict input types ------------------------------------------------------------------

StrictBool = Annotated[bool, Strict()]
"""A JSON boolean: `true` or `false`; not `0`, `1`, `"yes"` or `"true"`."""

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date_only(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value  # pydantic checks it is a real day
    raise PydanticCustomError("date_format", "a date as YYYY-MM-DD, without a time")


IsoDate = Annotated[date, BeforeValidator(_date_only)]
"""A calendar date written `YYYY-MM-DD`; not a datetime, a timestamp or another layout."""
