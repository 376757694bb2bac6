"""The case workflow: every state and every allowed transition, in one table.

Services ask `next_status` before they change a case; anything not in the table is an
`IllegalTransition`. Pure: no database here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.errors import IllegalTransition


class CaseStatus(models.TextChoices):
    NEW = "new", _("New")
    UNIT = "unit", _("Assigned to unit")
    OFFICER = "officer", _("Assigned to officer")
    DRAFTED = "drafted", _("Answer drafted")
    APPROVED = "approved", _("Answer approved")
    PUBLISHED = "published", _("Answered")
    CLOSED = "closed", _("Closed")
    ON_HOLD = "on_hold", _("On hold")
    MERGED = "merged", _("Merged")


class Action(StrEnum):
    OPEN = "open"
    ASSIGN_UNIT = "assign_unit"
    ASSIGN_OFFICER = "assign_officer"
    DRAFT = "draft"
    APPROVE = "approve"
    PUBLISH = "publish"
    CLOSE = "close"
    HOLD = "hold"
    RESUME = "resume"
    TRANSFER = "transfer"
    MERGE = "merge"
    REOPEN = "reopen"
    JOIN = "join"
    RECATEGORIZE = "recategorize"
    SPLIT = "split"
    # The published answer's delivery to the citizen's channel (sotong/channels/outbox.py).
    RETRY_REPLY = "retry_reply"
    RECORD_REPLY = "record_reply"


S = CaseStatus
OPEN_STATES = frozenset({S.NEW, S.UNIT, S.OFFICER, S.DRAFTED, S.APPROVED, S.ON_HOLD})
ANSWERED_STATES = frozenset({S.PUBLISHED, S.CLOSED})
# States a reopened or resumed case goes back to: with an officer, or only with its unit.
_BACK_TO_WORK = "back_to_work"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str


TRANSITIONS: dict[Action, Transition] = {
    Action.ASSIGN_UNIT: Transition(frozenset({S.NEW, S.UNIT}), S.UNIT),
    Action.ASSIGN_OFFICER: Transition(frozenset({S.UNIT, S.OFFICER}), S.OFFICER),
    Action.DRAFT: Transition(frozenset({S.UNIT, S.OFFICER, S.DRAFTED, S.APPROVED}), S.DRAFTED),
    Action.APPROVE: Transition(frozenset({S.DRAFTED}), S.APPROVED),
    # Publishing from DRAFTED is allowed only where the unit needs no approval (see below).
    Action.PUBLISH: Transition(frozenset({S.DRAFTED, S.APPROVED}), S.PUBLISHED),
    Action.CLOSE: Transition(frozenset({S.PUBLISHED}), S.CLOSED),
    Action.HOLD: Transition(frozenset({S.UNIT, S.OFFICER, S.DRAFTED, S.APPROVED}), S.ON_HOLD),
    Action.RESUME: Transition(frozenset({S.ON_HOLD}), _BACK_TO_WORK),
    Action.TRANSFER: Transition(
        frozenset({S.NEW, S.UNIT, S.OFFICER, S.DRAFTED, S.APPROVED, S.ON_HOLD}), S.UNIT
    ),
    Action.MERGE: Transition(OPEN_STATES, S.MERGED),
    Action.REOPEN: Transition(ANSWERED_STATES, _BACK_TO_WORK),
    # A new message joining a case, a corrected category, or a wrongly joined message
    # split off into a case of its own leaves the case's state alone.
    Action.JOIN: Transition(OPEN_STATES | ANSWERED_STATES, "same"),
    Action.RECATEGORIZE: Transition(OPEN_STATES | ANSWERED_STATES, "same"),
    Action.SPLIT: Transition(OPEN_STATES | ANSWERED_STATES, "same"),
    # Retrying a failed reply delivery or recording a reply made by hand leaves it alone too.
    Action.RETRY_REPLY: Transition(OPEN_STATES | ANSWERED_STATES, "same"),
    Action.RECORD_REPLY: Transition(OPEN_STATES | ANSWERED_STATES, "same"),
}


def next_status(
    action: Action,
    current: str,
    *,
    has_officer: bool = False,
    requires_approval: bool = False,
) -> str:
    """The status after `action`, or IllegalTransition naming why not."""
    transition = TRANSITIONS.get(action)
    if transition is None or current not in transition.sources:
        raise IllegalTransition(
            f"'{action}' is not allowed on a case that is '{current}'",
            action=str(action),
            status=current,
        )
    if action == Action.PUBLISH and current == S.DRAFTED and requires_approval:
        raise IllegalTransition(
            "this unit's answers need a supervisor's approval before publishing",
            action=str(action),
            status=current,
        )
    if transition.target == _BACK_TO_WORK:
        return S.OFFICER if has_officer else S.UNIT
    if transition.target == "same":
        return current
    return transition.target


def allowed_actions(current: str, *, requires_approval: bool = False) -> list[Action]:
    """Actions the state allows (permissions are checked separately)."""
    allowed: list[Action] = []
    for action, transition in TRANSITIONS.items():
        if action == Action.JOIN or current not in transition.sources:
            continue
        if action == Action.PUBLISH and current == S.DRAFTED and requires_approval:
            continue
        allowed.append(action)
    return allowed
