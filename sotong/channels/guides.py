"""What each platform asks of the city, in Korean first (English beside it): the app and
permissions to get, whether the platform posts to the webhook URL, its limits and how to
switch the connector on. The account settings page shows it; the README says the same.

Kept as data beside the connectors, by platform name (the connector's `platform`), so a
connector module stays free of page text. Facts as the platforms document them (X API v2
and Account Activity, Meta Graph API webhooks and the Messenger 24-hour window, Threads API
rate limits, Kakao i open builder skills, Mastodon and Bluesky APIs, YouTube Data API v3
quota, the Korean SMS gateways' LMS sizes); the connector's own numbers (reply limit,
poll interval) are shown from the connector itself, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import get_language


@dataclass(frozen=True)
class Text:
    """A text in Korean and English; shown in the page's language (Korean first)."""

    ko: str
    en: str

    def __str__(self) -> str:
        return self.en if (get_language() or "ko").startswith("en") else self.ko


@dataclass(frozen=True)
class Guide:
    """One platform's guide (연결 안내)."""

    platform: str
    name: Text
    needs: Text  # what the city must get from the platform: app, permissions, tokens
    webhook: bool  # the platform posts to /hooks/<platform>/<handle>/
    receiving: Text  # how messages arrive (webhook registration, or polling)
    limits: Text  # reply length, rate limits or quota
    switch_on: Text  # the steps, in order


_SWITCH_ON = Text(
    "① 아래 설정을 모두 입력하고 저장합니다. ② {receiving} ③ 연결 상태 페이지에서 이 계정이 "
    "'켜짐'인지 확인합니다. 꺼 두면 수신·수집·답변 발송이 모두 멈추고 다른 계정에는 영향이 "
    "없습니다.",
    "1. Enter and save every setting below. 2. {receiving} 3. Check on the connector status "
    "page that the account is on. Switched off, receiving, fetching and replies stop for this "
    "account alone.",
)


def _switch_on(ko: str, en: str) -> Text:
    return Text(_SWITCH_ON.ko.format(receiving=ko), _SWITCH_ON.en.format(receiving=en))


GUIDES: dict[str, Guide] = {
    guide.platform: guide
    for guide in [
        Guide(
            platform="x",
            name=Text("X (트위터)", "X (Twitter)"),
            needs=Text(
                "X 개발자 포털(developer.x.com)의 프로젝트와 앱. 멘션을 읽으려면 읽기가 되는 "
                "유료 요금제(Basic 이상)가 필요합니다. 앱 권한을 '읽기 및 쓰기'로 두고, 답변을 "
                "올리는 계정(예: 소셜미디어센터 계정)으로 OAuth 1.0a 사용자 인증을 받아 "
                "액세스 토큰과 시크릿을 발급받습니다. 웹훅(Account Activity API)을 쓰려면 그 "
                "이용 권한과 앱의 컨슈머 시크릿이 필요합니다.",
                "A project and app in the X developer portal, on a paid tier that can read "
                "mentions (Basic or above); app permissions 'Read and write'; OAuth 1.0a user "
                "tokens (access token and secret) of the account that posts the replies; for "
                "webhooks, Account Activity API access and the app's consumer secret.",
            ),
            webhook=True,
            receiving=Text(
                "멘션은 저장된 since_id 커서로 주기적으로 가져옵니다(폴링). Account Activity "
                "웹훅을 쓰는 계정은 아래 웹훅 주소를 등록합니다: X가 CRC(crc_token) 확인을 "
                "보내고, 이후 요청은 x-twitter-webhooks-signature 서명으로 확인합니다.",
                "Mentions are fetched by polling with a stored since_id cursor. Accounts with "
                "the Account Activity webhook register the URL below: X sends a CRC check "
                "(crc_token), then signs each delivery (x-twitter-webhooks-signature).",
            ),
            limits=Text(
                "답변 280자(가중치: 한글 등은 2, 링크는 23으로 셈). 긴 답변은 답변 링크와 함께 "
                "잘리거나 번호 붙은 스레드로 나뉩니다. 읽기·쓰기 요청 한도는 요금제에 따라 "
                "15분 단위로 정해지며, 한도에 걸리면 x-rate-limit-reset 시각까지 기다립니다.",
                "Replies of 280 weighted characters (Hangul counts 2, a link 23); longer "
                "answers are cut with the case link or split into a numbered thread. Read and "
                "write limits per 15 minutes depend on the tier; when hit, Sotong waits until "
                "x-rate-limit-reset.",
            ),
            switch_on=_switch_on(
                "웹훅을 쓰면 X 개발자 포털에 아래 주소를 등록합니다.",
                "With webhooks, register the URL below in the X developer portal.",
            ),
        ),
        Guide(
            platform="meta",
            name=Text("페이스북 페이지 · 인스타그램 (Meta)", "Facebook Page · Instagram (Meta)"),
            needs=Text(
                "Meta 개발자 앱(developers.facebook.com)에 웹훅과 Messenger·Instagram 제품을 "
                "추가하고, 시 페이지(및 연결된 인스타그램 프로페셔널 계정)의 페이지 액세스 "
                "토큰을 발급받습니다. 권한: pages_manage_metadata, pages_read_engagement, "
                "pages_manage_engagement, pages_messaging, instagram_basic, "
                "instagram_manage_comments, instagram_manage_messages (앱 검토 후 고급 액세스). "
                "앱 시크릿은 서명 확인에, 확인 토큰은 웹훅 등록에 씁니다.",
                "A Meta developer app with the Webhooks, Messenger and Instagram products; a "
                "Page access token for the city's Page (and its Instagram professional "
                "account) with pages_manage_metadata, pages_read_engagement, "
                "pages_manage_engagement, pages_messaging, instagram_basic, "
                "instagram_manage_comments, instagram_manage_messages (advanced access after "
                "App Review); the app secret checks signatures, the verify token registers "
                "the webhook.",
            ),
            webhook=True,
            receiving=Text(
                "앱의 웹훅 설정에서 아래 주소와 확인 토큰을 등록하고(hub.challenge 확인), "
                "페이지의 feed·messages 및 인스타그램 comments·messages 필드를 구독합니다. "
                "요청은 X-Hub-Signature-256 서명(앱 시크릿)으로 확인합니다.",
                "Register the URL below and the verify token in the app's webhook settings "
                "(hub.challenge check) and subscribe to the Page's feed and messages and "
                "Instagram's comments and messages fields. Deliveries are checked with "
                "X-Hub-Signature-256 (the app secret).",
            ),
            limits=Text(
                "메신저·인스타그램 메시지는 시민의 마지막 메시지 후 24시간 안에만 답할 수 "
                "있습니다(지나면 '다른 방법으로 답변'으로 표시). 메신저 텍스트 2,000자, "
                "인스타그램 메시지 1,000바이트, 댓글은 더 길게 쓸 수 있습니다. Graph API 호출 "
                "한도(비즈니스 사용 사례)에 걸리면 기다렸다가 다시 보냅니다.",
                "Messenger and Instagram messages can be answered only within 24 hours of the "
                "citizen's last message (after that: 'reply elsewhere'). Messenger text 2,000 "
                "characters, Instagram messages 1,000 bytes; comments may be longer. When the "
                "Graph API's business-use-case rate limit is hit, Sotong waits and retries.",
            ),
            switch_on=_switch_on(
                "Meta 앱에 아래 웹훅 주소를 등록하고 필드를 구독합니다.",
                "Register the webhook URL below in the Meta app and subscribe the fields.",
            ),
        ),
        Guide(
            platform="threads",
            name=Text("스레드 (Threads)", "Threads"),
            needs=Text(
                "Threads 사용 사례를 추가한 Meta 앱과 시 계정의 Threads 사용자 액세스 토큰(장기 "
                "토큰, 60일마다 갱신). 권한: threads_basic, threads_content_publish, "
                "threads_manage_replies, threads_read_replies, threads_manage_mentions. "
                "앱 시크릿은 웹훅 서명 확인에 씁니다.",
                "A Meta app with the Threads use case and the city account's long-lived "
                "Threads user token (renewed every 60 days) with threads_basic, "
                "threads_content_publish, threads_manage_replies, threads_read_replies, "
                "threads_manage_mentions; the app secret checks webhook signatures.",
            ),
            webhook=True,
            receiving=Text(
                "앱의 Threads 웹훅 설정에 아래 주소를 등록하고 replies·mentions를 구독합니다.",
                "Register the URL below in the app's Threads webhook settings and subscribe "
                "to replies and mentions.",
            ),
            limits=Text(
                "글 하나 500자. 답변은 컨테이너를 만든 뒤 게시하는 2단계로 올립니다. API로 "
                "올리는 답글은 24시간에 1,000개, 게시물은 250개까지입니다.",
                "500 characters a post; replies are published in two steps (create a "
                "container, then publish). At most 1,000 API replies and 250 posts in 24 "
                "hours.",
            ),
            switch_on=_switch_on(
                "Meta 앱에 아래 웹훅 주소를 등록합니다. 토큰이 만료되면 새 토큰을 저장합니다.",
                "Register the webhook URL below in the Meta app; save a new token when it expires.",
            ),
        ),
        Guide(
            platform="kakao",
            name=Text("카카오톡 채널", "KakaoTalk Channel"),
            needs=Text(
                "카카오톡 채널과 카카오 i 오픈빌더 챗봇. 챗봇의 폴백(또는 민원 접수) 블록에 "
                "아래 주소를 스킬 서버로 연결합니다. 답변을 채널 메시지로 보내려면 공식 딜러사를 "
                "통한 카카오 비즈메시지(알림톡·친구톡) 발신 프로필과 API 키가 필요합니다.",
                "A KakaoTalk Channel and a Kakao i Open Builder chatbot whose fallback (or "
                "complaint) block calls the URL below as its skill server; to send the final "
                "answer as a channel message, a Kakao Bizmessage sender profile and API key "
                "from an official dealer.",
            ),
            webhook=True,
            receiving=Text(
                "오픈빌더의 스킬 설정에 아래 주소를 등록합니다. 카카오는 5초 안에 응답을 "
                "받아야 하므로, 소통은 접수번호·답변 예정일·공개 민원 페이지 링크를 담은 접수 "
                "안내로 바로 답합니다.",
                "Register the URL below as the skill URL in Open Builder. Kakao needs an "
                "answer within 5 seconds, so Sotong answers at once with a receipt (case "
                "number, expected date, link to the public case page).",
            ),
            limits=Text(
                "스킬 응답 5초 제한, 스킬 응답 simpleText 1,000자. 최종 답변은 채널 메시지 "
                "API로 보내며 메시지 종류별 길이 제한을 따릅니다.",
                "5-second skill timeout; a simpleText skill answer holds 1,000 characters. "
                "The final answer goes out through the channel message API within its "
                "message type's length.",
            ),
            switch_on=_switch_on(
                "오픈빌더의 스킬 서버 주소로 아래 주소를 등록하고 배포합니다.",
                "Register the URL below as the skill server in Open Builder and deploy.",
            ),
        ),
        Guide(
            platform="mastodon",
            name=Text("마스토돈", "Mastodon"),
            needs=Text(
                "시 계정이 있는 인스턴스의 '개발' 설정에서 만든 애플리케이션과 그 액세스 토큰. "
                "범위: read:notifications, read:statuses, write:statuses.",
                "An application created under Development in the city account's instance "
                "settings, and its access token with read:notifications, read:statuses and "
                "write:statuses.",
            ),
            webhook=False,
            receiving=Text(
                "알림(멘션·답글)을 저장된 커서로 주기적으로 가져옵니다(폴링). 웹훅 등록은 "
                "필요 없습니다.",
                "Notifications (mentions and replies) are fetched by polling with a stored "
                "cursor; no webhook to register.",
            ),
            limits=Text(
                "글 길이는 인스턴스 설정(기본 500자). 답변은 Idempotency-Key와 함께 보내 두 번 "
                "올라가지 않습니다. API 한도는 기본 5분에 300회이며, 한도에 걸리면 "
                "X-RateLimit-Reset 시각까지 기다립니다.",
                "Post length as the instance sets it (500 by default); replies carry an "
                "Idempotency-Key so they post once. The API allows 300 calls per 5 minutes "
                "by default; when hit, Sotong waits until X-RateLimit-Reset.",
            ),
            switch_on=_switch_on(
                "인스턴스 주소와 토큰을 저장하면 다음 수집 때부터 알림을 가져옵니다.",
                "Once the instance URL and token are saved, the next poll fetches notifications.",
            ),
        ),
        Guide(
            platform="bluesky",
            name=Text("블루스카이", "Bluesky"),
            needs=Text(
                "시 계정의 핸들과 앱 비밀번호(설정 → 개인정보 및 보안 → 앱 비밀번호). 계정의 "
                "본 비밀번호는 넣지 마십시오.",
                "The city account's handle and an app password (Settings → Privacy and "
                "security → App passwords); never the account's own password.",
            ),
            webhook=False,
            receiving=Text(
                "알림(멘션·답글)을 저장된 커서로 주기적으로 가져옵니다(폴링). 웹훅 등록은 "
                "필요 없습니다.",
                "Notifications (mentions and replies) are fetched by polling with a stored "
                "cursor; no webhook to register.",
            ),
            limits=Text(
                "글 하나 300자(그래핌 단위). 답변은 스레드의 root·parent 참조와 함께 올립니다. "
                "PDS의 요청 한도에 걸리면 ratelimit-reset 시각까지 기다립니다.",
                "300 graphemes a post; replies carry the thread's root and parent "
                "references. When the PDS rate limit is hit, Sotong waits until "
                "ratelimit-reset.",
            ),
            switch_on=_switch_on(
                "핸들과 앱 비밀번호를 저장하면 다음 수집 때부터 알림을 가져옵니다.",
                "Once the handle and app password are saved, the next poll fetches notifications.",
            ),
        ),
        Guide(
            platform="youtube",
            name=Text("유튜브", "YouTube"),
            needs=Text(
                "Google Cloud 프로젝트에서 YouTube Data API v3를 사용 설정하고, 시 채널 "
                "소유자 계정으로 OAuth 동의를 받아 youtube.force-ssl 범위의 갱신 토큰을 "
                "발급받습니다(클라이언트 ID·시크릿과 함께).",
                "A Google Cloud project with the YouTube Data API v3 enabled, and an OAuth "
                "client (ID and secret) with a refresh token for the youtube.force-ssl scope, "
                "consented by the city channel's owner.",
            ),
            webhook=False,
            receiving=Text(
                "채널의 새 댓글 스레드를 주기적으로 가져옵니다(폴링). 웹훅 등록은 필요 없습니다.",
                "New comment threads on the channel are fetched by polling; no webhook to "
                "register.",
            ),
            limits=Text(
                "하루 할당량 10,000 단위(목록 조회 1단위, 답글 작성 50단위)이므로 수집 간격이 "
                "길게 잡혀 있습니다. 댓글 10,000자. 할당량이 다 차면 다음 날(태평양 시간 "
                "자정)까지 기다립니다.",
                "A daily quota of 10,000 units (a list costs 1, a reply 50), hence a longer "
                "poll interval; comments of 10,000 characters. When the quota is spent, "
                "Sotong waits for the next day (midnight Pacific time).",
            ),
            switch_on=_switch_on(
                "클라이언트 ID·시크릿과 갱신 토큰을 저장하면 다음 수집 때부터 가져옵니다.",
                "Once the client ID, secret and refresh token are saved, the next poll "
                "fetches comments.",
            ),
        ),
        Guide(
            platform="email",
            name=Text("이메일", "E-mail"),
            needs=Text(
                "시 민원 메일함의 IMAP 계정(받기)과 SMTP 계정(보내기). 보내는 주소는 SPF·DKIM이 "
                "설정된 시 도메인이어야 시민의 메일함에 제대로 도착합니다.",
                "An IMAP account for the city's complaints mailbox (in) and an SMTP account "
                "(out); the From address should be on the city's domain with SPF and DKIM "
                "set, so that replies reach the citizens' inboxes.",
            ),
            webhook=False,
            receiving=Text(
                "IMAP으로 받은 편지함을 주기적으로 읽습니다(Message-ID로 중복 제거). 웹훅 "
                "등록은 필요 없습니다.",
                "The inbox is read over IMAP by polling (duplicates removed by Message-ID); "
                "no webhook to register.",
            ),
            limits=Text(
                "길이 제한 없음. 답변은 In-Reply-To·References로 시민의 메일과 같은 스레드에 "
                "보냅니다. 메일 서버의 발송 한도를 따릅니다.",
                "No length limit; replies thread with In-Reply-To and References. The mail "
                "server's own sending limits apply.",
            ),
            switch_on=_switch_on(
                "IMAP·SMTP 서버와 계정을 저장하면 다음 수집 때부터 메일을 읽습니다.",
                "Once the IMAP and SMTP servers and accounts are saved, the next poll reads "
                "the mailbox.",
            ),
        ),
        Guide(
            platform="sms",
            name=Text("문자메시지 (SMS)", "Text message (SMS)"),
            needs=Text(
                "문자 발송·수신 게이트웨이 계정(국내: 솔라피 등, 해외: Twilio 등)과 API 키·"
                "시크릿, 사전 등록된 발신번호. 수신 문자를 아래 주소로 보내도록 게이트웨이에 "
                "등록합니다.",
                "An SMS gateway account (in Korea e.g. Solapi, abroad e.g. Twilio) with its "
                "API key and secret and a pre-registered sender number; the gateway is set to "
                "forward incoming texts to the URL below.",
            ),
            webhook=True,
            receiving=Text(
                "게이트웨이의 수신 웹훅 설정에 아래 주소를 등록합니다. 요청은 게이트웨이가 "
                "문서로 정한 서명 방식으로 확인합니다.",
                "Register the URL below as the gateway's inbound webhook; deliveries are "
                "checked with the signature scheme the gateway documents.",
            ),
            limits=Text(
                "SMS 90바이트(EUC-KR, 한글 45자), 그보다 길면 LMS 2,000바이트로 보냅니다. "
                "인코딩할 수 없는 글자는 비슷한 글자로 바꿔 보냅니다. 건당 요금이 듭니다.",
                "SMS of 90 bytes (EUC-KR: 45 Hangul), longer as LMS of 2,000 bytes; "
                "characters that cannot be encoded are replaced. Each message is charged.",
            ),
            switch_on=_switch_on(
                "게이트웨이에 아래 수신 주소를 등록합니다.",
                "Register the inbound URL below with the gateway.",
            ),
        ),
    ]
}

# Directory channels whose platform name differs from the channel code.
PLATFORM_OF_CHANNEL = {"facebook": "meta", "instagram": "meta"}


def platform_of_channel(code: str) -> str:
    """The platform (and webhook path) an account on the channel `code` belongs to."""
    return PLATFORM_OF_CHANNEL.get(code, code)


def guide_for(platform: str) -> Guide | None:
    return GUIDES.get(platform)
