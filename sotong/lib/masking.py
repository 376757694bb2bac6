"""Personal-data finder and masker used by every public output of Sotong.

Owns detection of Korean personal data (RRN, phones, e-mail, cards, bank accounts, car plates,
address details) in free text and its replacement by Korean placeholders; pure, no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sotong.lib.korean_text import WIDTH_TABLE

__all__ = [
    "MASK_LABELS",
    "PERSONAL_DATA_KINDS",
    "PersonalDataSpan",
    "find_personal_data",
    "mask_personal_data",
]

PERSONAL_DATA_KINDS: tuple[str, ...] = (
    "rrn",
    "mobile",
    "landline",
    "email",
    "card",
    "bank_account",
    "car_plate",
    "address_detail",
)

MASK_LABELS: dict[str, str] = {
    "rrn": "[주민등록번호]",
    "mobile": "[전화번호]",
    "landline": "[전화번호]",
    "email": "[이메일]",
    "card": "[카드번호]",
    "bank_account": "[계좌번호]",
    "car_plate": "[차량번호]",
    "address_detail": "[상세주소]",
}

# Overlap resolution order (lower wins). E-mail comes first because its local part often *is*
# a phone number ("01012345678@naver.com") and the whole address is the personal datum.
_PRIORITY: dict[str, int] = {
    "email": 0,
    "rrn": 1,
    "card": 2,
    "bank_account": 3,
    "mobile": 4,
    "landline": 5,
    "car_plate": 6,
    "address_detail": 7,
}
_P = _PRIORITY


@dataclass(frozen=True)
class PersonalDataSpan:
    kind: str  # one of PERSONAL_DATA_KINDS
    start: int  # offsets into the ORIGINAL text (str indices)
    end: int
    text: str  # original[start:end]


# --------------------------------------------------------------------------------------------
# Width folding. Citizens type full-width digits/letters and odd dashes; we match on a copy in
# which each such code point is replaced by exactly one ASCII code point, so offsets stay valid
# for the original text (NFKC would change lengths and break that).
# --------------------------------------------------------------------------------------------
_FOLD: dict[int, int] = dict(WIDTH_TABLE)
# Dash look-alikes typed between digit groups ("010ㅡ1234ㅡ5678", "010—1234—5678").
_FOLD.update(
    {cp: 0x2D for cp in (0x3161, 0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63)}
)
# Middle dots ("010·1234·5678", the Korean "ㆍ").
_FOLD.update({cp: 0x2E for cp in (0x00B7, 0x318D, 0x30FB)})
_NEEDS_FOLD = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(_FOLD)) + "]")


def _fold(text: str) -> str:
    # translate() is the slow step for non-ASCII text and most inputs need no folding at all.
    return text.translate(_FOLD) if _NEEDS_FOLD.search(text) else text


# Placeholders already in the text ("[전화번호]", e.g. when masked text is masked again) are
# blanked in the matching copy with a private-use character that every boundary check treats
# like a digit: a placeholder stands where a number was, and must neither act as a cue ("계좌",
# "전화" are in the labels) nor open a word boundary the original number did not. This is what
# keeps masking idempotent.
_BLANK = "\ue000"
_LABEL_RE = re.compile("|".join(re.escape(v) for v in sorted(set(MASK_LABELS.values()))))


def _prepare(text: str) -> str:
    """The 1:1 matching copy of `text`: width-folded, with placeholders blanked."""
    folded = _fold(text)
    if "[" in folded:
        folded = _LABEL_RE.sub(lambda m: _BLANK * len(m.group()), folded)
    return folded


# --------------------------------------------------------------------------------------------
# Regexes. Each starts with a literal or a character class (never with a look-behind) so the
# engine can skip non-candidate characters in C; the "not inside a longer token" checks are
# look-behinds placed right after the first character. Repeated groups are bounded and contain
# no unbounded quantifier, so there is no catastrophic backtracking on hostile input.
# --------------------------------------------------------------------------------------------
_SEP = r"(?: ?[-.] ?| )"  # one group separator: hyphen/dot (optionally spaced) or one space
# "\ue000" is what placeholders already in the text are blanked to (see _prepare); boundary checks
# treat it like a digit.
_NUMLIKE = r"[0-9\ue000]"
# Placed after a first digit: the character before it is no letter/digit and there is no
# "digit + separator" before it either, so we never start inside "2024-03-15" or "1-2-3-4".
_D0 = r"(?<![0-9\ue000A-Za-z][0-9])(?<![0-9\ue000][-.][0-9])"
_NOT_BEFORE_NUM = r"(?!" + _NUMLIKE + r")(?![-.]" + _NUMLIKE + r")"  # not inside a longer number
_MASKCH = "*xX●○#"  # characters people use to hide digits themselves

# RRN and card numbers never share a start (6+7 digits vs 4-4-4-4 vs a 16-digit run), so a
# single pass with named alternatives finds both.
_RRN_CARD = re.compile(
    r"[0-9]" + _D0 + r"(?:"
    # RRN: plausible YYMMDD, separator, 7 digits starting 1-8 (or self-hidden "1******").
    r"(?P<rrn>[0-9](?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:(?P<rsep>" + _SEP + r")?[1-8][0-9" + _MASKCH + r"]{6}"
    r"|(?P<rsep2> ?[-.] ?)[" + _MASKCH + r"]{7})(?![0-9\ue000A-Za-z*●○#]))"
    # Grouped cards (4-4-4-4 with one consistent separator, or Amex 4-6-5) need no Luhn.
    r"|(?P<card>[0-9]{3}(?P<s>[-. ]| - )(?:[0-9]{4}|[*xX●]{4})(?P=s)(?:[0-9]{4}|[*xX●]{4})"
    r"(?P=s)[0-9]{4}|(?<=3)[47][0-9]{2}(?P<t>[- ])[0-9]{6}(?P=t)[0-9]{5})" + _NOT_BEFORE_NUM + r""
    # An unseparated run is only a card when the Luhn check passes (checked in code).
    r"|(?P<cardrun>[0-9]{15}|(?<=3)[47][0-9]{13})" + _NOT_BEFORE_NUM + r")"
)

_AREA_REST = r"(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70|50[0-9])"  # area code after its leading 0
_AREA_INTL = r"(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)"
# "+82 10 …", "+82-2-…", "(+82)10-…", "+82 (0)10-…": the trunk 0 may or may not be repeated.
_INTL_TAIL = r"(?:\(0\) ?)?0?"
_MOBILE_CODE = r"1[016789]"
_SUBSCRIBER = _SEP + r"?(?:[0-9]{3,4}|[*xX]{3,4})" + _SEP + r"?[0-9]{4}" + _NOT_BEFORE_NUM

# One pass for mobiles and landlines; the kind is read off the digits in code. Every top-level
# alternative starts with a literal ("+", "(" or "0") so the engine can skip other text in C.
_NOT_SPACED_ON = r"(?!" + _NUMLIKE + r")(?! " + _NUMLIKE + r")"
_INTL_CODE = r"(?:" + _MOBILE_CODE + r"|" + _AREA_INTL + r")"
_DOMESTIC_CODE = r"(?:" + _MOBILE_CODE + r"|" + _AREA_REST + r")"
_PHONE = re.compile(
    "|".join(
        (
            # +82 10 1234 5678, +82-2-2133-1234, +82 (0)10-…
            r"\+(?<![0-9\ue000A-Za-z+]\+) ?82" + _SEP + "?" + _INTL_TAIL + _INTL_CODE + _SUBSCRIBER,
            # (+82)10-1234-5678
            r"\((?<![0-9\ue000A-Za-z]\()\+ ?82\) ?" + _INTL_TAIL + _INTL_CODE + _SUBSCRIBER,
            # (010)1234-5678, (02)123-4567
            r"\((?<![0-9\ue000A-Za-z]\()0" + _DOMESTIC_CODE + r"\)" + _SUBSCRIBER,
            # 010-1234-5678, 02)2133-1234, 0311234567
            r"0(?<![0-9\ue000A-Za-z+]0)(?<![0-9\ue000][-.]0)"
            + _DOMESTIC_CODE
            + r"\)?"
            + _SUBSCRIBER,
            # "0 1 0 1 2 3 4 5 6 7 8": digits typed one by one with single spaces.
            r"0(?<![0-9\ue000]0)(?<![0-9\ue000] 0) 1 [016789](?: [0-9]){7,8}" + _NOT_SPACED_ON,
        )
    )
)

# Tells a _PHONE match that is a mobile ("010-…", "(010)…", "+82 10 …", "+82 (0)10 …").
_MOBILE_HEAD = re.compile(r"(?:\(?\+ ?82\)?[-. ]*(?:\(0\) ?)?)?\(?0?1[016789]")

# An office number without area code ("☎ 760-7577") is only a phone when a phone cue precedes
# it; a bare "760-7577" in prose is too ambiguous, and "접수번호 2403-1234" is no cue (only a bare
# "번호:" is). 15xx/16xx/18xx business lines start with 1 and are never matched.
_LOCAL_WITH_CUE = re.compile(
    r"(?:☎|☏|📞|📱|전화(?:번호)?|연락처|T(?<![A-Za-z]T)(?:EL|el)|t(?<![A-Za-z]t)el"
    r"|번(?<![가-힣]번)호 ?:|내선|직통)(?:는|은|:)?[ :.)(]{0,3}"
    r"(?P<m>[2-9][0-9]{2,3}[-.][0-9]{4})" + _NOT_BEFORE_NUM
)

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-](?<![A-Za-z0-9\ue000._%+-][A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,6}\.[A-Za-z]{2,24}"
    # Ends at a sentence dot ("…@naver.com."), never inside a longer token.
    r"(?![A-Za-z0-9\ue000_%+-])(?!\.[A-Za-z0-9\ue000])"
)

# Account-number shapes; they only count with a bank cue in front (checked in code).
_ACCOUNT = re.compile(
    r"[0-9]"
    + _D0
    + r"(?:[0-9]{1,5}(?P<s>[- ])[0-9]{2,7}(?:(?P=s)[0-9]{1,7}){0,2}|[0-9]{9,13})"
    + _NOT_BEFORE_NUM
)
_ACCOUNT_GROUP = re.compile(r"[0-9]+")
# Bank cues: strong words, unambiguous bank names, and names that are also ordinary words. The
# pattern is a flat list of literals (fast to scan); the cue class is looked up by its text.
_BANK_STRONG = ("은행", "뱅크", "계좌", "입금", "예금주", "송금", "이체", "금고")
_BANK_NAMES = ("신한", "농협", "카뱅", "토스", "신협", "수협", "씨티", "SC제일", "KB", "NH", "IBK")
_BANK_WEAK = ("국민", "우리", "하나", "기업", "우체국", "새마을")
_BANK_CUE = re.compile(
    "|".join(_BANK_STRONG + tuple(n + "(?![가-힣])" for n in _BANK_NAMES) + _BANK_WEAK)
)
_BANK_CUE_CLASS: dict[str, str] = {
    **dict.fromkeys(_BANK_STRONG, "strong"),
    **dict.fromkeys(_BANK_NAMES, "name"),
    **dict.fromkeys(_BANK_WEAK, "weak"),
}
_BANK_WINDOW = 20  # max characters between the end of a bank cue and the number
_GAP_BLOCK = re.compile(_NUMLIKE)
_ADJACENT_GAP = re.compile(r"[ :)(\[\]/]{0,3}")
_PHONE_CUE = re.compile(r"☎|☏|📞|📱|전화|연락|휴대폰|핸드폰|폰|TEL|Tel|tel|HP|H\.P|문자|카톡")

# Words that, right after a number, make it a count, amount or date rather than a plate or an
# address. The look-aheads keep location words with the same first syllable ("일대", "주변").
_UNITS = (
    "년|개월|월|일(?![대원부])|시간|시(?![청장내])|분(?![양리])|초(?![등입])|원(?!룸)|만|천|억|"
    "명|개(?!발)|건(?![물너])|회(?![관사])|번(?!지)|대(?![문로학])|세대|세(?!탁)|살|가지|가구|"
    "층|호(?!텔)|동(?![쪽네])|위|등(?!지)|점(?!포)|장(?!소)|권|병(?!원)|곳|군데|마리|평|배|"
    "도(?!로)|주(?![변택차민유])|정거장|정류장|인(?!근)|석|칸|줄|통(?!로)|단(?!지)|편(?!의)|"
    "페이지|째|차(?![도량])|톤|리터|미터|킬로|km|m(?![a-z])|cm|mm|kg|%|퍼센트|프로|선|기(?!준)"
)

# After a plate "번" is fine ("12가3456번 차량"); these still mean a count, date or amount.
_PLATE_STOP = (
    "년|개월|월|일|원|만|천|억|명|개|건|회|세대|가구|평|시간|시|분|초|km|%|곳|마리|층|위|배|호"
)
_PLATE_LETTERS = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자배하허호"
# Digits first; an old-style region prefix ("서울12가3456") is picked up in code.
_CAR_PLATE = re.compile(
    r"[0-9](?<![0-9\ue000][0-9])(?<![0-9\ue000][-.][0-9])(?P<lead>[0-9]{0,2})"
    + (r" ?[" + _PLATE_LETTERS + r"] ?[0-9]{4}")
    + (r"(?!" + _NUMLIKE + r")(?![-.,]" + _NUMLIKE + r")(?! ?(?:" + _PLATE_STOP + r"))")
)
_REGION_BEFORE = re.compile(
    r"(?<![가-힣])(?:서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|"
    r"경남|제주) ?\Z"
)

# Address numbers. The place (동/리/N가 or road name) is kept and only the number is masked, so
# we find the number first: either right after a word ending like a place (checked fully in
# code) or followed by "번지".
_ADDR_NUM = re.compile(
    r"[0-9](?<![0-9\ue000A-Za-z][0-9])(?<![0-9\ue000][-.,:][0-9])"
    r"(?:(?<=[동리가로길산][0-9])|(?<=[동리가로길산] [0-9])|(?=[0-9]{0,3}(?:-[0-9]{1,4})? ?번지))"
    r"[0-9]{0,3}(?P<sub>-[0-9]{1,4})?(?P<bunji> ?번지)?"
    r"(?!" + _NUMLIKE + r")(?![-.,:/~]" + _NUMLIKE + r")(?![가길호동층선기차]|번(?!지))"
    r"(?! ?(?:" + _UNITS + r"))"
)
# The place word right before an address number. It is matched with fullmatch() on the one or two
# words in front of the number (found in code), which is much cheaper than searching backwards;
# the empty group marks the 동/리/가 alternative.
_PLACE = re.compile(
    r"[가-힣]{1,8}(?:[0-9]{1,2}동| ?[0-9]{1,2}가|동|리)(?P<dong>)"
    r"|[가-힣]{1,10}(?:[0-9]{1,3}번?)?[로길](?: ?[0-9]{1,4}번?길)?"
)
_ROAD_SUFFIX = re.compile(r" ?[0-9]{1,4}번?길\Z")
# Apartment/villa units: find "1203호", then look at what is in front of it.
_HO = re.compile(r"[0-9](?<![0-9\ue000A-Za-z][0-9])[0-9]{0,3}호(?:실)?(?![선기차점텔])")
_BUILDINGS = (
    "아파트|APT|apt|빌라|오피스텔|맨션|하이츠|빌|타운|원룸|주택|연립|다세대|다가구|캐슬|빌리지|하우스|"
    "팰리스|고시원|고시텔"
)
_BUILDING_WORDS = tuple(_BUILDINGS.split("|"))
# A unit prefix in front of "1203호" ("101동", "B동", "가동", "3층", "101동 3층", "지하 1층",
# "101-"), masked together with the unit number. "제2024-123호" is a document number.
_UNIT_PREFIX = re.compile(
    r"(?:[0-9]{1,4}|[A-Za-z]|[가나다라마바사아자차카타파하])동(?: ?[0-9]{1,2}층)?"
    r"|(?:[Bb]|지하 ?)?[0-9]{1,2}층|(?!(?:19|20)[0-9]{2}-)[0-9]{1,4}-"
)
_HO_PREFIX_LAST = frozenset("동층-" + "".join(w[-1] for w in _BUILDING_WORDS))


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Ordinary words that end like a road (로/길) or a 동 but are not places ("버스로 10", "운동 3").
_NOT_ROAD = _wordset(
    "도로 차로 경로 통로 진로 선로 수로 항로 활주로 교차로 대로 서로 바로 새로 따로 절로 저절로 "
    "스스로 제대로 그대로 이대로 멋대로 마음대로 맘대로 함부로 억지로 실제로 주로 정말로 진짜로 "
    "최초로 별도로 뒤로 위로 전화로 문자로 메일로 버스로 택시로 지하철로 기차로 자전거로 카드로 "
    "계좌로 팩스로 배로 걸로 거로 그걸로 이걸로 저걸로 대체로 무료로 유료로 오후로 최대로 최소로 "
    "최고로 최저로 위주로 차례로 순서대로 예정대로 계획대로 법대로 원칙대로 규정대로 말대로 "
    "생각대로 뜻대로 시간대로 매뉴얼대로 "
    "골목길 산길 밤길 뒷길 지름길 갈림길 오르막길 내리막길 출근길 퇴근길 등굣길 하굣길 귀갓길 "
    "빗길 눈길 산책길 찻길 가는길 오는길 이길 그길 저길 꽃길"
)
_NOT_DONG = _wordset(
    "행동 활동 운동 이동 자동 공동 아동 노동 출동 작동 가동 연동 감동 변동 소동 난동 충동 합동 "
    "협동 진동 파동 부동 발동 선동 구동 유동 기동 거동 반동 격동 엄동 한동 몇동 같은동 우리동 "
    "옆동 앞동 뒷동 윗동 아랫동 다른동 그동 저동 지동 삼동"
)
_NOT_RI = _wordset(
    "처리 관리 자리 소리 머리 다리 우리 요리 마리 수리 정리 무리 유리 논리 원리 권리 심리 진리 "
    "의리 조리 분리 대리 미리 빨리 멀리 널리 얼리 부리 꼬리 고리 허리 노리 보리 오리 리"
)
_YEARLIKE = re.compile(r"(?:19|20)[0-9]{2}")

_URL = re.compile(
    r"https?://[^\s<>\"'`가-힣]+"
    r"|www\.[^\s<>\"'`가-힣]+"
    r"|[A-Za-z](?<![A-Za-z0-9@._-][A-Za-z])[A-Za-z0-9-]{0,62}\.(?:[A-Za-z0-9-]{1,63}\.){0,4}"
    r"(?:com|net|org|kr|me|be|io|ly|gl|co|tv|app)/[^\s<>\"'`가-힣]*"
)
_HAS_DIGIT = re.compile(r"[0-9]")
_NON_DIGITS = re.compile(r"[^0-9]+")

# A candidate is (priority, start, end, kind); plain tuples keep the hot path allocation-light.
_Cand = tuple[int, int, int, str]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digit_key(folded: str) -> str:
    """Digits of a phone-like string, with +82 rewritten to the domestic leading 0."""
    digits = _NON_DIGITS.sub("", folded)
    if folded.lstrip(" (").startswith("+82") and digits.startswith("82"):
        digits = "0" + digits[2:]
        if digits.startswith("00"):  # "+82 (0)10-..." spells the trunk zero twice
            digits = digits[1:]
    return digits


def _is_hangul(ch: str) -> bool:
    return "가" <= ch <= "힣"


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "-") or "가" <= ch <= "힣" or ch == _BLANK


def _words_before(folded: str, end: int, limit: int = 16) -> list[int]:
    """Candidate start offsets for the one or two words before `end`, longest first.

    A word is a run of Hangul, ASCII letters, digits and "-"; two words are joined by a single
    space ("올림픽로 35길", "101동 3층"). Walking back in Python is cheaper than a backwards
    regex search; callers fullmatch() their pattern on each candidate.
    """
    lo = max(0, end - limit)
    i = end
    while i > lo and _is_word_char(folded[i - 1]):
        i -= 1
    if i == end:
        return []
    starts = [i]
    if i - 1 > lo and folded[i - 1] == " " and _is_word_char(folded[i - 2]):
        j = i - 1
        while j > lo and _is_word_char(folded[j - 1]):
            j -= 1
        starts.insert(0, j)
    return starts


def _bank_cue_ok(folded: str, start: int, phone_shaped: bool) -> bool:
    """True when a bank cue sits at most _BANK_WINDOW characters before `start`."""
    lo = max(0, start - _BANK_WINDOW - 6)
    if _BANK_CUE.search(folded, lo, start) is None:  # the common case: no cue at all
        return False
    window = folded[lo:start]
    for cue in _BANK_CUE.finditer(window):
        gap = window[cue.end() :]
        # A phone cue between the bank cue and the number makes it a phone ("입금 후 연락처 …").
        # Nor does a cue reach past another number ("신한 110-…, 12345678901").
        if len(gap) > _BANK_WINDOW or _PHONE_CUE.search(gap) or _GAP_BLOCK.search(gap):
            continue
        if _ADJACENT_GAP.fullmatch(gap):
            return True  # "국민 123456-…", "계좌 010-…" (평생계좌), "신한: 110-…"
        # Further away only strong cues and unambiguous bank names count, and never for a
        # number that is a valid phone as well ("계좌이체 했어요 010-… 로 연락 주세요").
        # Weak names ("우리" = we, "하나" = one, "국민신문고", "우체국 앞") never count from afar.
        if not phone_shaped and _BANK_CUE_CLASS[cue.group()] != "weak":
            return True
    return False


def _collect_numbers(folded: str, out: list[_Cand]) -> None:
    rrn_nosep: set[tuple[int, int]] = set()
    for m in _RRN_CARD.finditer(folded):
        if m.group("rrn"):
            out.append((_P["rrn"], m.start(), m.end(), "rrn"))
            if m.group("rsep") is None and m.group("rsep2") is None:
                rrn_nosep.add(m.span())
        elif m.group("card") or _luhn_ok(m.group()):
            out.append((_P["card"], m.start(), m.end(), "card"))

    phone_spans: set[tuple[int, int]] = set()
    for m in _PHONE.finditer(folded):
        text = m.group()
        kind = "mobile" if text.startswith("0 1 ") or _MOBILE_HEAD.match(text) else "landline"
        out.append((_P[kind], m.start(), m.end(), kind))
        phone_spans.add(m.span())
    if "-" in folded or "." in folded:
        for m in _LOCAL_WITH_CUE.finditer(folded):
            out.append((_P["landline"], m.start("m"), m.end("m"), "landline"))

    # Account numbers need a bank cue in front; most texts have none, so check that first.
    accounts = _ACCOUNT.finditer(folded) if _BANK_CUE.search(folded) else ()
    for m in accounts:
        start, end = m.span()
        text = m.group()
        sep = m.group("s")
        n_digits = len(text) - text.count(sep) if sep else len(text)
        if n_digits > 14 and sep:
            # A number glued on by a space separator ("… 456789 10000"): drop trailing groups.
            groups = list(_ACCOUNT_GROUP.finditer(text))
            while len(groups) > 2 and sum(g.end() - g.start() for g in groups) > 14:
                groups.pop()
            end = start + groups[-1].end()
            n_digits = sum(g.end() - g.start() for g in groups)
        if not 10 <= n_digits <= 14:
            continue
        if _bank_cue_ok(folded, start, (start, end) in phone_spans):
            out.append((_P["bank_account"], start, end, "bank_account"))
            if (start, end) in rrn_nosep:
                # A 13-digit run right after a bank cue is an account, not an RRN look-alike.
                out.remove((_P["rrn"], start, end, "rrn"))

    for m in _CAR_PLATE.finditer(folded):
        start = m.start()
        region = _REGION_BEFORE.search(folded, max(0, start - 3), start)
        if region:
            start = region.start()
        elif not m.group("lead"):  # "1가 1234": current plates have 2-3 leading digits
            continue
        out.append((_P["car_plate"], start, m.end(), "car_plate"))


def _collect_addresses(folded: str, out: list[_Cand]) -> None:
    for m in _ADDR_NUM.finditer(folded):
        start, end = m.span()
        # "산 12-3": the mountain-lot marker belongs to the masked number ("뒷산12" does not).
        lead = folded[max(0, start - 2) : start]
        k = 1 if lead[-1:] == "산" else 2 if lead == "산 " else 0
        san = bool(k) and (start - k == 0 or not _is_hangul(folded[start - k - 1]))
        if san:
            start -= k
        if m.group("bunji"):
            out.append((_P["address_detail"], start, end, "address_detail"))
            continue
        word_end = start - 1 if folded[start - 1 : start] == " " else start
        place = None
        for word_start in _words_before(folded, word_end):
            place = _PLACE.fullmatch(folded, word_start, word_end)
            if place is not None:
                break
        if place is None:
            continue
        strong = san or m.group("sub") is not None  # "123-45", "산 12": clearly a lot number
        number = m.group()
        word = place.group()
        if place.group("dong") is not None:
            if word in _NOT_DONG or word in _NOT_RI or word.endswith("거리"):
                continue
            # Many ordinary words end in 리 ("거리", "처리"): there only lot-like numbers count.
            if not strong and (word[-1] == "리" or _YEARLIKE.fullmatch(number)):
                continue
        else:
            suffix = _ROAD_SUFFIX.search(word)  # "올림픽로35길" is judged by "올림픽로"
            head = word[: suffix.start()] if suffix else word
            if san or word in _NOT_ROAD or head in _NOT_ROAD or head.endswith("으로"):
                continue
            if not strong and _YEARLIKE.fullmatch(number):
                continue
        out.append((_P["address_detail"], start, end, "address_detail"))

    if "호" in folded:
        for m in _HO.finditer(folded):
            start = m.start()
            word_end = start - 1 if folded[start - 1 : start] == " " else start
            if word_end < 1 or folded[word_end - 1] not in _HO_PREFIX_LAST:
                continue
            # Apartment/villa names stay ("래미안아파트 1203호"); a dong/floor prefix is masked
            # together with the unit number as one span.
            if not folded[max(0, word_end - 6) : word_end].endswith(_BUILDING_WORDS):
                for word_start in _words_before(folded, word_end):
                    if _UNIT_PREFIX.fullmatch(folded, word_start, word_end):
                        start = word_start
                        break
                else:
                    continue
            out.append((_P["address_detail"], start, m.end(), "address_detail"))


def _by_start(cand: _Cand) -> int:
    return cand[1]


def _by_priority(cand: _Cand) -> tuple[int, int, int]:
    return (cand[0], cand[1] - cand[2], cand[1])


def _resolve(cands: list[_Cand]) -> list[_Cand]:
    """Pick non-overlapping spans: most specific kind first, then the longer span."""
    if len(cands) <= 1:
        return cands
    cands.sort(key=_by_start)
    if all(a[2] <= b[1] for a, b in zip(cands, cands[1:], strict=False)):
        return cands  # the common case: nothing overlaps
    cands.sort(key=_by_priority)
    starts: list[int] = []
    ends: list[int] = []
    chosen: list[_Cand] = []
    for cand in cands:
        s, e = cand[1], cand[2]
        i = bisect_left(starts, s)
        if (i < len(starts) and starts[i] < e) or (i > 0 and ends[i - 1] > s):
            continue
        starts.insert(i, s)
        ends.insert(i, e)
        chosen.insert(i, cand)
    return chosen


def _allowed_keys(allow: Iterable[str]) -> frozenset[str]:
    if isinstance(allow, str):  # a single number passed by mistake still means "allow this"
        return _allowed_keys_of((allow,))
    return _allowed_keys_of(tuple(allow))


@lru_cache(maxsize=256)
def _allowed_keys_of(allow: tuple[str, ...]) -> frozenset[str]:
    # Callers pass the same office list for every text; normalising it once is enough.
    return frozenset(k for k in (_digit_key(_fold(a)) for a in allow) if k)


def _is_allowed(kind: str, key: str, keys: frozenset[str]) -> bool:
    if key in keys:
        return True
    # "☎ 760-7577" is the allowed office number "02-760-7577" written without its area code.
    return kind == "landline" and len(key) >= 7 and any(k.endswith(key) for k in keys)


def _find(text: str, allow: Iterable[str]) -> list[_Cand]:
    """Resolved candidates for `text`; shared by the two public functions."""
    folded = _prepare(text)
    cands: list[_Cand] = []
    if "@" in folded:
        cands.extend((_P["email"], m.start(), m.end(), "email") for m in _EMAIL.finditer(folded))
    if _HAS_DIGIT.search(folded):
        _collect_numbers(folded, cands)
        _collect_addresses(folded, cands)
    if not cands:
        return cands
    if "/" in folded or "www." in folded:
        urls = [m.span() for m in _URL.finditer(folded)]
        if urls:
            # A URL is left alone as a whole: tweet ids, post ids and tracking numbers in it are
            # not personal data, and masking them would break the link.
            cands = [c for c in cands if not any(c[1] < ue and us < c[2] for us, ue in urls)]
    if allow:
        keys = _allowed_keys(allow)
        if keys:
            cands = [
                c
                for c in cands
                if c[3] in ("email", "car_plate", "address_detail")
                or not _is_allowed(c[3], _digit_key(folded[c[1] : c[2]]), keys)
            ]
    return _resolve(cands)


def find_personal_data(text: str, *, allow: Iterable[str] = ()) -> list[PersonalDataSpan]:
    """Return non-overlapping personal-data spans of `text`, ordered by start offset.

    `allow` lists public numbers (office phones, "120") that must not be reported. They are
    compared by digits only, so "02)2133-1234" matches an allowed "02-2133-1234".
    """
    if not text:
        return []
    return [PersonalDataSpan(kind, s, e, text[s:e]) for _, s, e, kind in _find(text, allow)]


def mask_personal_data(text: str, *, allow: Iterable[str] = ()) -> str:
    """Replace each personal-data span by its MASK_LABELS placeholder; keep all else verbatim."""
    if not text:
        return text
    cands = _find(text, allow)
    if not cands:
        return text
    parts: list[str] = []
    pos = 0
    for _, start, end, kind in cands:
        parts.append(text[pos:start])
        parts.append(MASK_LABELS[kind])
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
