"""Who may see and do what to a case. Checked by every service, whatever door it came in by.

The center and administrators work across units; officers and supervisors only within
their own unit; approving an answer is a supervisor's (or an administrator's) act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sotong.cases.workflow import Action
from sotong.directory.models import Officer
from sotong.errors import PermissionDenied

if TYPE_CHECKING:
    from sotong.cases.models import Case

CENTER_ONLY = frozenset({Action.ASSIGN_UNIT, Action.MERGE, Action.SPLIT})


def can_view(officer: Officer, case: Case) -> bool:
    if not officer.is_active:
        return False
    if officer.sees_all_units:
        return True
    return case.unit_id is not None and case.unit_id == officer.unit_id


def check_permission(officer: Officer | None, action: Action, case: Case) -> None:
    """Raise PermissionDenied unless `officer` may do `action` to `case`.

    `None` is the system itself (jobs, triage), which may do anything.
    """
    if officer is None:
        return
    if not can_view(officer, case):
        raise PermissionDenied("this case belongs to another unit")
    if action == Action.APPROVE:
        if officer.role not in {Officer.Role.SUPERVISOR, Officer.Role.ADMINISTRATOR}:
            raise PermissionDenied("only a supervisor can approve an answer")
        return
    if action in CENTER_ONLY and not officer.sees_all_units:
        raise PermissionDenied(f"only the center can {action.replace('_', ' ')}")


def check_assignable(actor: Officer | None, case: Case, assignee: Officer) -> None:
    """An officer may take a case; a supervisor or the center may give it to anyone of the unit."""
    if assignee.unit_id != case.unit_id or not assignee.is_active:
        raise PermissionDenied("the officer must belong to the case's unit")
    if actor is None or actor.pk == assignee.pk or actor.sees_all_units:
        return
    if actor.role != Officer.Role.SUPERVISOR:
        raise PermissionDenied("only a supervisor can assign a case to someone else")
