"""Named case actions with plain string parameters, for the doors that receive them as
form fields or JSON (the case page, the JSON API, the command line).

It only resolves parameters (a unit code, an officer's username, a case number, a message
of the case) and calls the one service for the action; every rule stays in the services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sotong.cases import services
from sotong.cases.models import Case, parse_case_number
from sotong.cases.workflow import Action
from sotong.channels import outbox
from sotong.channels.models import ReplyDelivery
from sotong.directory.models import Category, Officer, Unit
from sotong.errors import InvalidInput, NotFound
from sotong.inbox.models import Message

Params = Mapping[str, Any]


def _text(params: Params, name: str) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string", field=name)
    return value


def _unit(params: Params) -> Unit:
    code = _text(params, "unit")
    unit = Unit.objects.filter(code=code, active=True).first() if code else None
    if unit is None:
        raise InvalidInput("choose an existing unit", field="unit")
    return unit


def _officer(params: Params, actor: Officer) -> Officer:
    username = _text(params, "officer") or actor.get_username()
    officer = Officer.objects.filter(username=username).first()
    if officer is None:
        raise InvalidInput("no such officer", field="officer")
    return officer


def _target_case(params: Params) -> Case:
    pk = parse_case_number(_text(params, "into"))
    target = Case.objects.filter(pk=pk).first() if pk is not None else None
    if target is None:
        raise NotFound("no case with that number", field="into")
    return target


def _category(params: Params) -> Category:
    code = _text(params, "category")
    category = Category.objects.filter(code=code, active=True).first() if code else None
    if category is None:
        raise InvalidInput("choose an existing category", field="category")
    return category


def _case_message(params: Params, case: Case) -> Message:
    """A message of this case, by id (a form's string or a JSON number); another case's
    message looks like no message, as another unit's case looks like no case."""
    value = params.get("message", "")
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 12):
        raise InvalidInput("'message' must be a message id", field="message")
    message = Message.objects.filter(pk=int(text), case_link__case=case).first()
    if message is None:
        raise NotFound("no such message in this case", field="message")
    return message


def _delivery(params: Params, case: Case) -> ReplyDelivery:
    """A reply delivery of this case, by id; another case's looks like none."""
    value = params.get("delivery", "")
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 12):
        raise InvalidInput("'delivery' must be a reply delivery id", field="delivery")
    delivery = ReplyDelivery.objects.filter(pk=int(text), case=case).first()
    if delivery is None:
        raise NotFound("no such reply delivery in this case", field="delivery")
    return delivery


HANDLERS: dict[str, Callable[[Case, Params, Officer], object]] = {
    Action.ASSIGN_UNIT: lambda c, p, a: services.assign_unit(
        c, _unit(p), actor=a, note=_text(p, "note")
    ),
    Action.ASSIGN_OFFICER: lambda c, p, a: services.assign_officer(c, _officer(p, a), actor=a),
    Action.DRAFT: lambda c, p, a: services.draft_answer(c, _text(p, "text"), actor=a),
    Action.APPROVE: lambda c, p, a: services.approve_answer(c, actor=a),
    Action.PUBLISH: lambda c, p, a: services.publish_answer(
        c, actor=a, override_reason=_text(p, "override_reason")
    ),
    Action.CLOSE: lambda c, p, a: services.close_case(c, actor=a, note=_text(p, "note")),
    Action.HOLD: lambda c, p, a: services.hold_case(c, reason=_text(p, "reason"), actor=a),
    Action.RESUME: lambda c, p, a: services.resume_case(c, actor=a, note=_text(p, "note")),
    Action.TRANSFER: lambda c, p, a: services.transfer_case(
        c, _unit(p), reason=_text(p, "reason"), actor=a, wrong_unit=bool(p.get("wrong_unit"))
    ),
    Action.MERGE: lambda c, p, a: services.merge_case(
        c, _target_case(p), actor=a, note=_text(p, "note")
    ),
    Action.RECATEGORIZE: lambda c, p, a: services.recategorize_case(c, _category(p), actor=a),
    Action.REOPEN: lambda c, p, a: services.reopen_case(c, reason=_text(p, "reason"), actor=a),
    Action.SPLIT: lambda c, p, a: services.split_message(c, _case_message(p, c), actor=a),
    Action.RETRY_REPLY: lambda c, p, a: outbox.retry_delivery(_delivery(p, c), actor=a),
    Action.RECORD_REPLY: lambda c, p, a: outbox.record_manual_reply(
        _delivery(p, c), note=_text(p, "note"), actor=a
    ),
}


def perform(case: Case, action: str, params: Params, actor: Officer) -> object:
    """Do `action` to `case`; returns what the service returned (the new case of a split)."""
    handler = HANDLERS.get(action)
    if handler is None:
        raise NotFound(f"no action '{action}'")
    return handler(case, params, actor)
