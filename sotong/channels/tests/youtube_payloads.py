"""YouTube Data API v3 responses for the tests, in the documented shapes
(commentThreads.list → commentThreadListResponse; comments.insert → comment), and a
recording HttpMockSequence (googleapiclient's own transport stub)."""

from __future__ import annotations

import json
from typing import Any

from googleapiclient.http import HttpMockSequence

CHANNEL_ID = "UCcity0000000000000000001"
CITY_TEXT = "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 고쳐주세요"
TOKEN = (
    {"status": "200"},
    json.dumps({"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}),
)


def thread(
    comment_id: str, published: str, text: str = CITY_TEXT, video: str = "vid0001"
) -> dict[str, Any]:
    return {
        "kind": "youtube#commentThread",
        "id": comment_id,
        "snippet": {
            "channelId": CHANNEL_ID,
            "videoId": video,
            "topLevelComment": {
                "kind": "youtube#comment",
                "id": comment_id,
                "snippet": {
                    "channelId": CHANNEL_ID,
                    "videoId": video,
                    "textDisplay": text,
                    "textOriginal": text,
                    "authorDisplayName": "@citizen_kim",
                    "authorChannelId": {"value": "UCcitizen000000000000001"},
                    "publishedAt": published,
                    "updatedAt": published,
                },
            },
            "canReply": True,
            "totalReplyCount": 0,
            "isPublic": True,
        },
    }


def page(*threads: dict[str, Any], next_token: str | None = None) -> tuple[dict[str, str], str]:
    body: dict[str, Any] = {"kind": "youtube#commentThreadListResponse", "items": list(threads)}
    if next_token:
        body["nextPageToken"] = next_token
    return {"status": "200"}, json.dumps(body)


def error(status: int, reason: str) -> tuple[dict[str, str], str]:
    body = {
        "error": {
            "code": status,
            "message": reason,
            "errors": [{"message": reason, "domain": "youtube.quota", "reason": reason}],
        }
    }
    return {"status": str(status)}, json.dumps(body)


class RecordingHttp(HttpMockSequence):
    """HttpMockSequence that also keeps every request it answered."""

    def __init__(self, iterable):
        super().__init__(iterable)
        self.requests: list[dict[str, Any]] = []

    def request(
        self, uri, method="GET", body=None, headers=None, redirections=1, connection_type=None
    ):
        self.requests.append({"uri": uri, "method": method, "body": body, "headers": headers or {}})
        return super().request(uri, method, body, headers, redirections, connection_type)
