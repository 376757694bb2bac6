"""The case workflow table: every allowed transition leads where it should, everything else
is refused with IllegalTransition. Pure: no database."""

from __future__ import annotations

import pytest

from sotong.cases.workflow import (
    ANSWERED_STATES,
    OPEN_STATES,
    TRANSITIONS,
    Action,
    CaseStatus,
    allowed_actions,
    next_status,
)
from sotong.errors import IllegalTransition

S = CaseStatus

# What each action does from each state it is allowed in, written out by hand so that a
# change to the table shows up here as a deliberate edit. (has_officer=False; see below.)
EXPECTED: dict[Action, dict[str, str]] = {
    Action.ASSIGN_UNIT: {S.NEW: S.UNIT, S.UNIT: S.UNIT},
    Action.ASSIGN_OFFICER: {S.UNIT: S.OFFICER, S.OFFICER: S.OFFICER},
    Action.DRAFT: {
        S.UNIT: S.DRAFTED,
        S.OFFICER: S.DRAFTED,
        S.DRAFTED: S.DRAFTED,
        S.APPROVED: S.DRAFTED,
    },
    Action.APPROVE: {S.DRAFTED: S.APPROVED},
    Action.PUBLISH: {S.DRAFTED: S.PUBLISHED, S.APPROVED: S.PUBLISHED},
    Action.CLOSE: {S.PUBLISHED: S.CLOSED},
    Action.HOLD: {
        S.UNIT: S.ON_HOLD,
        S.OFFICER: S.ON_HOLD,
        S.DRAFTED: S.ON_HOLD,
        S.APPROVED: S.ON_HOLD,
    },
    Action.RESUME: {S.ON_HOLD: S.UNIT},
    Action.TRANSFER: {
        s: S.UNIT for s in (S.NEW, S.UNIT, S.OFFICER, S.DRAFTED, S.APPROVED, S.ON_HOLD)
    },
    Action.MERGE: {s: S.MERGED for s in OPEN_STATES},
    Action.REOPEN: {S.PUBLISHED: S.UNIT, S.CLOSED: S.UNIT},
    Action.JOIN: {s: s for s in OPEN_STATES | ANSWERED_STATES},
    Action.RECATEGORIZE: {s: s for s in OPEN_STATES | ANSWERED_STATES},
    Action.SPLIT: {s: s for s in OPEN_STATES | ANSWERED_STATES},
    Action.RETRY_REPLY: {s: s for s in OPEN_STATES | ANSWERED_STATES},
    Action.RECORD_REPLY: {s: s for s in OPEN_STATES | ANSWERED_STATES},
}

ALLOWED = [
    (action, state, target) for action, moves in EXPECTED.items() for state, target in moves.items()
]
REFUSED = [
    (action, state)
    for action in Action
    for state in S.values
    if state not in EXPECTED.get(action, {})
]


def test_expected_table_covers_every_action_of_the_workflow():
    # OPEN is not a transition (a case is created in its first state); everything else is.
    assert set(TRANSITIONS) == set(Action) - {Action.OPEN}
    assert set(EXPECTED) == set(TRANSITIONS)
    for action, transition in TRANSITIONS.items():
        assert set(transition.sources) == set(EXPECTED[action]), action


@pytest.mark.parametrize(("action", "state", "target"), ALLOWED)
def test_allowed_transition(action, state, target):
    assert next_status(action, state) == target


@pytest.mark.parametrize(("action", "state"), REFUSED)
def test_every_other_pair_is_illegal(action, state):
    with pytest.raises(IllegalTransition) as caught:
        next_status(action, state)
    assert caught.value.details == {"action": str(action), "status": state}
    assert state in caught.value.message


def test_merged_case_accepts_nothing():
    for action in Action:
        with pytest.raises(IllegalTransition):
            next_status(action, S.MERGED)
    assert allowed_actions(S.MERGED) == []


def test_publish_from_drafted_refused_when_the_unit_requires_approval():
    with pytest.raises(IllegalTransition, match="approval"):
        next_status(Action.PUBLISH, S.DRAFTED, requires_approval=True)
    # Once approved it may go out, and units without the rule publish drafts directly.
    assert next_status(Action.PUBLISH, S.APPROVED, requires_approval=True) == S.PUBLISHED
    assert next_status(Action.PUBLISH, S.DRAFTED, requires_approval=False) == S.PUBLISHED


def test_allowed_actions_hide_publish_of_a_draft_awaiting_approval():
    assert Action.PUBLISH in allowed_actions(S.DRAFTED)
    assert Action.PUBLISH not in allowed_actions(S.DRAFTED, requires_approval=True)
    assert Action.APPROVE in allowed_actions(S.DRAFTED, requires_approval=True)
    assert Action.PUBLISH in allowed_actions(S.APPROVED, requires_approval=True)


def test_allowed_actions_match_the_table_and_never_offer_join():
    for state in S.values:
        offered = set(allowed_actions(state))
        expected = {a for a, moves in EXPECTED.items() if state in moves and a != Action.JOIN}
        assert offered == expected, state


def test_resume_goes_back_to_the_officer_or_the_unit():
    assert next_status(Action.RESUME, S.ON_HOLD, has_officer=True) == S.OFFICER
    assert next_status(Action.RESUME, S.ON_HOLD, has_officer=False) == S.UNIT


@pytest.mark.parametrize("state", [S.PUBLISHED, S.CLOSED])
def test_reopen_goes_back_to_the_officer_or_the_unit(state):
    assert next_status(Action.REOPEN, state, has_officer=True) == S.OFFICER
    assert next_status(Action.REOPEN, state, has_officer=False) == S.UNIT


def test_has_officer_changes_only_the_back_to_work_transitions():
    for action, state, target in ALLOWED:
        if action in {Action.RESUME, Action.REOPEN}:
            continue
        assert next_status(action, state, has_officer=True) == target


def test_unknown_state_is_illegal():
    with pytest.raises(IllegalTransition):
        next_status(Action.DRAFT, "archived")
