"""`/hooks/<platform>/<account handle>/`: every platform's webhooks at one URL pattern.

GET answers the platform's verification handshake. POST reads the raw body (413 beyond
the limit), verifies its signature with the account's secret (refused with the status
the platform expects, nothing stored), stores it and answers 200 at once; a job parses
and ingests it (sotong/channels/services.py). A platform that waits for the answer
(Kakao's skill) is answered with the receipt, ingested within its time budget.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from sotong.channels.connectors.base import SignatureInvalid, WebhookRequest
from sotong.channels.connectors.registry import connector_for
from sotong.channels.receipts import AnswersInline
from sotong.channels.selectors import hook_target
from sotong.channels.services import answer_inline, receive_delivery
from sotong.inbox.api import read_body

log = logging.getLogger(__name__)


@csrf_exempt
def receive(request: HttpRequest, platform: str, handle: str) -> HttpResponse:
    connector = connector_for(platform)
    account, config = hook_target(connector, handle)
    if request.method not in {"GET", "POST"}:
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    body = read_body(request) if request.method == "POST" else b""
    hook_request = WebhookRequest(
        method=request.method,
        query=request.GET.dict(),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
    )
    if request.method == "GET":
        answer = connector.handshake(config, hook_request)
        return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    try:
        connector.verify(config, hook_request)
    except SignatureInvalid as exc:
        # Never the body: it is unauthenticated input and may carry personal data.
        log.warning("webhook refused for %s/%s (%d bytes): %s", platform, handle, len(body), exc)
        return HttpResponse(status=connector.rejected_status)
    if isinstance(connector, AnswersInline):
        answer = answer_inline(account, platform, config, hook_request)
        return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    receive_delivery(account, platform, hook_request)
    return HttpResponse(b"ok", content_type="text/plain")
