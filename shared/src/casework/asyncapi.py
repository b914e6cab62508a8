"""The public event contract as documents integrations can read (DESIGN §3).

- `json_schemas()`: one JSON Schema per event type, from the pydantic contracts.
- `asyncapi_document(service)`: an AsyncAPI 3.0 document of a service's topic (or of all
  five), every message with its payload schema and the CloudEvents binary-mode headers.

Each service serves its own at `/asyncapi.json` (and a readable page at `/asyncapi`);
`casework contracts --out DIR` writes them all to files.
"""

from __future__ import annotations

import html
import json
from typing import Any

from casework.contracts import all_events
from casework.events import PERSONAL_MARK, DomainEvent

SERVICES = ("intake", "cases", "contacts", "supervision", "notifications")

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, Kafka protocol binding, binary mode: attributes as "
    "`ce_` headers, `content-type` for datacontenttype, the record key is the stream id.",
    "required": [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_streamversion",
        "content-type",
    ],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid", "description": "Unique per event"},
        "ce_source": {"type": "string", "examples": ["/casework/cases"]},
        "ce_type": {"type": "string", "examples": ["casework.cases.CaseOpened.v1"]},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "Stream id, e.g. `case-<uuid>`"},
        "ce_streamversion": {
            "type": "string",
            "description": "Version of the event in its stream (1, 2, ...): de-duplicate on "
            "(subject, streamversion). Versions increase but may skip one where a write was "
            "abandoned and fenced.",
        },
        "ce_site": {"type": "string"},
        "ce_correlationid": {"type": "string"},
        "ce_causationid": {"type": "string"},
        "ce_traceparent": {"type": "string", "description": "W3C trace context"},
        "traceparent": {"type": "string", "description": "W3C trace context (propagation)"},
        "content-type": {"const": "application/json"},
    },
}


def _events_of(service: str | None) -> list[type[DomainEvent]]:
    events = sorted(all_events(), key=lambda e: e.type_name())
    return [e for e in events if service is None or e.service == service]


def json_schemas(service: str | None = None) -> dict[str, dict[str, Any]]:
    """{type name: JSON Schema of its data}; personal (encrypted) fields carry
    `x-casework-personal` with their subject field and record class."""
    return {e.type_name(): e.model_json_schema(mode="serialization") for e in _events_of(service)}


def asyncapi_document(service: str | None = None) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of one service's events topic, or of every service's."""
    services = [s for s in ([service] if service else SERVICES) if _events_of(s)]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for svc in services:
        refs = {}
        for event in _events_of(svc):
            key = event.type_name().replace(".", "_")
            schema = event.model_json_schema(mode="serialization")
            messages[key] = {
                "name": event.type_name(),
                "title": event.__name__,
                "summary": (event.__doc__ or "").strip().splitlines()[0] if event.__doc__ else "",
                "contentType": "application/json",
                "headers": CLOUDEVENTS_HEADERS,
                "payload": schema,
                "x-encrypted-fields": [
                    {
                        "field": field.dotted,
                        "subject_field": field.subject_field,
                        "record_class": field.record_class,
                    }
                    for field in event.personal_fields()
                ],
            }
            refs[key] = {"$ref": f"#/components/messages/{key}"}
        channel = f"casework_{svc}_events"
        channels[channel] = {
            "address": f"casework.{svc}.events",
            "description": f"Every event of the {svc} service, keyed by stream id; all events "
            "of one aggregate are in one partition, in order.",
            "messages": refs,
        }
        operations[f"publish_{svc}_events"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"The {svc} service's outbox relay publishes here (at least once).",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"Casework {service or 'platform'} events",
            "version": "1.0.0",
            "description": "Public event contract. Type names are "
            "`casework.<service>.<EventName>.v<N>`; a `.vN` type only ever gains optional "
            f"fields. Fields marked `{PERSONAL_MARK}` (listed per message in "
            "`x-encrypted-fields`) hold personal data and travel encrypted: each is a token "
            "`enc:v1:<subject>/<record class>/v<N>:<base64url(nonce, ciphertext, tag)>`, "
            "AES-256-GCM with the data key of the subject named by the event's field "
            "`subject_field` (`client_id` c → subject `client:c`; `subject_id` holds a whole "
            "subject id, `person:<uuid>`) and of the record class (identity, clinical, notes). "
            "An integration reads them only under an explicit, audited grant "
            "(`casework keys grant`); a destroyed key (erasure) leaves the token unreadable "
            "for ever.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def asyncapi_html(document: dict[str, Any]) -> str:
    """A plain, dependency-free page listing the channels and messages of a document."""
    parts = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>{html.escape(document['info']['title'])}</title>",
        "<style>body{font:15px system-ui;margin:2em;max-width:70em}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}</style>",
        f"<h1>{html.escape(document['info']['title'])}</h1>",
        f"<p>{html.escape(document['info']['description'])}</p>",
        '<p><a href="asyncapi.json">AsyncAPI 3.0 document (JSON)</a></p>',
    ]
    for channel in document["channels"].values():
        parts.append(f"<h2>Topic <code>{html.escape(channel['address'])}</code></h2>")
        parts.append(f"<p>{html.escape(channel['description'])}</p>")
        for ref in channel["messages"].values():
            message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
            parts.append(f"<h3><code>{html.escape(message['name'])}</code></h3>")
            parts.append(f"<p>{html.escape(message['summary'])}</p>")
            payload = json.dumps(message["payload"], indent=2)
            parts.append(
                "<details><summary>data schema</summary>"
                f"<pre>{html.escape(payload)}</pre></details>"
            )
    return "\n".join(parts)
