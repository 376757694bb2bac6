"""The demo stream of `make run`: messages written for the project (not real citizens'),
fed one by one through the same ingest service as real channels so the pages move."""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_message

DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo_messages.yaml"


def demo_messages() -> list[dict[str, Any]]:
    return list(yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))["messages"])


def feed(
    *,
    loop: bool,
    interval: float,
    limit: int | None = None,
    answer_every: int = 3,
    post_to: str | None = None,
) -> int:
    """Feed demo messages, each with a fresh id; every `answer_every` messages, the demo
    administrator answers one open demo case.

    With `post_to` (the running server's base URL), a message on a platform the demo signs
    (sotong/channels/demo.py) is posted to its webhook as the platform would post it;
    the others, and all without `post_to`, are ingested directly.
    """
    from sotong.cases.demo import answer_one_demo_case
    from sotong.channels.demo import post, signed_delivery

    items = demo_messages()
    stream = itertools.cycle(items) if loop else iter(items)
    sent = 0
    for item in itertools.islice(stream, limit):
        delivery = (
            signed_delivery(
                item["channel"],
                item.get("account") or "",
                item.get("author") or "",
                item["text"],
                str(time.time_ns() // 1000),  # numeric, unique, like a platform's id
            )
            if post_to
            else None
        )
        if delivery is None or not 200 <= post(post_to or "", delivery) < 300:
            ingest_message(
                NormalizedMessage(
                    channel=item["channel"],
                    account=item.get("account") or "",
                    external_id=f"demo-{uuid.uuid4()}",
                    author=item.get("author") or "",
                    text=item["text"],
                    raw={"demo": True},
                )
            )
        sent += 1
        if answer_every and sent % answer_every == 0:
            answer_one_demo_case()
        if interval:
            time.sleep(interval)
    return sent
