"""`POST /api/v1/messages`: connectors deliver messages here with their bearer token.

The view only authenticates, decodes and calls the ingest service; it answers fast and
leaves triage to a job. 201 for a new message, 200 with `"duplicate": true` for one already
stored, 4xx with a JSON error naming the problem otherwise.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sotong.errors import InvalidInput, PayloadTooLarge
from sotong.inbox.normalize import decode_json_body, normalize_message
from sotong.inbox.services import authenticate_connector, ingest_message


def read_body(request: HttpRequest) -> bytes:
    """The body, refused before reading when it is larger than allowed."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidInput("Content-Length is not a number") from None
    if declared > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", limit=limit)
    try:
        return request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", limit=limit) from None


@csrf_exempt
@require_POST
def post_message(request: HttpRequest) -> JsonResponse:
    token = authenticate_connector(request.headers.get("Authorization", ""))
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise InvalidInput("send the message as Content-Type: application/json")
    data = decode_json_body(read_body(request))
    item = normalize_message(data, max_text=settings.SOTONG_MAX_TEXT_CHARS)
    result = ingest_message(item, allowed_channel=token.channel)
    message = result.message
    body = {
        "id": message.pk,
        "channel": item.channel,
        "external_id": message.external_id,
        "duplicate": not result.created,
        "triage": "pending" if result.created else message.triage_state,
    }
    return JsonResponse(body, status=201 if result.created else 200)
