"""Open311 writes: a POSTed service request becomes a message on the "open311" channel,
ingested like any other so that triage decides its category, unit and deadline.

The client gets a random token (the spec's "batch" type): the message's external id is
built from it, and `GET tokens/{token}` gives the case number once triage has opened one.
The requested service_code, the coordinates and the contact fields stay in the message's
raw payload, which only officers see.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.utils import timezone

from sotong.errors import NotAuthenticated, NotFound, PermissionDenied
from sotong.inbox.models import ConnectorToken, Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import authenticate_connector, ingest_message
from sotong.portal.open311.params import Submission
from sotong.portal.open311.selectors import ACCOUNT, CHANNEL, TOKEN_PREFIX, service_exists

# A client that retries (same client, service and description) within this time gets the
# first submission's token back instead of a second message.
RETRY_WINDOW = timedelta(minutes=10)


def authenticate(api_key: str) -> ConnectorToken:
    """The connector token named by `api_key`, if it may post to the Open311 channel."""
    if not api_key.strip():
        raise NotAuthenticated("api_key is required to create a service request")
    try:
        token = authenticate_connector(f"Bearer {api_key.strip()}")
    except NotAuthenticated:
        raise NotAuthenticated("invalid api_key: cannot create the service request") from None
    if token.channel is not None and token.channel.code != CHANNEL:
        raise PermissionDenied("this api_key may not create Open311 service requests")
    return token


def _client_key(connector: ConnectorToken, submission: Submission) -> str:
    """Who sent it, as far as the client says: empty when it says nothing."""
    who = submission.device_id or submission.account_id or submission.email
    return f"{connector.pk}:{who}" if who else ""


def _text(submission: Submission) -> str:
    """The message triage reads: the description, with the place written before it when
    the description does not name it (the web form does the same with its district)."""
    place = submission.address_string
    if place and place not in submission.description:
        return f"[{place}] {submission.description}"
    return submission.description


def _retried(client: str, text: str) -> str | None:
    """The token of the same submission made moments ago by the same client, if any."""
    if not client:
        return None
    earlier = (
        Message.objects.filter(
            channel__code=CHANNEL,
            received_at__gte=timezone.now() - RETRY_WINDOW,
            text=text,
            raw_payload__client=client,
        )
        .order_by("pk")
        .values_list("raw_payload", flat=True)
        .first()
    )
    token = earlier.get("token") if isinstance(earlier, dict) else None
    return token if isinstance(token, str) else None


def submit_service_request(submission: Submission, *, connector: ConnectorToken) -> str:
    """Store the request as a message waiting for triage; returns its token."""
    if not service_exists(submission.service_code):
        raise NotFound(f"service_code '{submission.service_code}' was not found")
    text = _text(submission)
    client = _client_key(connector, submission)
    retried = _retried(client, text)
    if retried:
        return retried
    token = secrets.token_urlsafe(18)
    raw = {
        "open311": {
            "service_code": submission.service_code,  # a hint: triage decides
            "lat": submission.lat,
            "long": submission.long,
            "address_string": submission.address_string,
            "address_id": submission.address_id,
            "email": submission.email,
            "first_name": submission.first_name,
            "last_name": submission.last_name,
            "phone": submission.phone,
            "device_id": submission.device_id,
            "account_id": submission.account_id,
            "media_url": submission.media_url,
            "attributes": submission.attributes,
        },
        "token": token,
        "client": client,
        "connector": connector.name,
    }
    name = " ".join(p for p in (submission.first_name, submission.last_name) if p)
    contact = submission.email or submission.phone
    ingest_message(
        NormalizedMessage(
            channel=CHANNEL,
            account=ACCOUNT,
            external_id=TOKEN_PREFIX + token,
            text=text,
            author=(f"{name} <{contact}>" if name and contact else (contact or name))[:255],
            attachments=(
                [{"url": submission.media_url, "type": "", "name": ""}]
                if submission.media_url
                else []
            ),
            raw=raw,
        ),
        allowed_channel=connector.channel,
    )
    return token
