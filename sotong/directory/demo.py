"""Demo sign-ins for `make run`: one person per role, with fresh passwords printed once.

Clearly demo data: usernames start with `demo-`, and `SOTONG_DEMO=0` creates none.
"""

from __future__ import annotations

import secrets

from sotong.directory.models import Officer, Unit

DEMO_PEOPLE = [
    # username, role, unit code, name
    ("demo-admin", Officer.Role.ADMINISTRATOR, None, "관리자"),
    ("demo-center", Officer.Role.CENTER, "center", "센터 운영자"),
    ("demo-jongno", Officer.Role.OFFICER, "district-jongno", "종로구 담당자"),
    ("demo-jongno-chief", Officer.Role.SUPERVISOR, "district-jongno", "종로구 부서장"),
    ("demo-transport", Officer.Role.OFFICER, "transport", "도시교통실 담당자"),
    ("demo-safety", Officer.Role.OFFICER, "safety", "안전총괄실 담당자"),
    ("demo-safety-chief", Officer.Role.SUPERVISOR, "safety", "안전총괄실 부서장"),
]


def create_demo_people() -> list[tuple[str, str, str]]:
    """Create or reset the demo sign-ins; returns (username, password, role) to print."""
    created = []
    for username, role, unit_code, name in DEMO_PEOPLE:
        unit = Unit.objects.filter(code=unit_code).first() if unit_code else None
        if unit_code and unit is None:
            continue  # a city directory without that unit
        officer, _ = Officer.objects.get_or_create(username=username)
        officer.role = role
        officer.unit = unit
        officer.last_name = name
        officer.is_staff = role == Officer.Role.ADMINISTRATOR
        officer.is_superuser = role == Officer.Role.ADMINISTRATOR
        password = secrets.token_urlsafe(9)
        officer.set_password(password)
        officer.save()
        created.append((username, password, f"{officer.get_role_display()} {unit or ''}".strip()))
    return created
