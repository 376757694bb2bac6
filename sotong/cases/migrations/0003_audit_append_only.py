"""The database itself refuses to rewrite audit events, so not even a script that bypasses
the application can change the audit trail.

PostgreSQL refuses UPDATE and DELETE of a row (TRUNCATE, which only an owner can run, is
how a test database is emptied). SQLite has no TRUNCATE, so Django empties a test database
with DELETE: there the trigger refuses UPDATE, and deletion is refused by the model.
"""

from django.db import migrations

SQLITE = [
    """CREATE TRIGGER cases_auditevent_no_update BEFORE UPDATE ON cases_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit events cannot be changed'); END;""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS cases_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS cases_auditevent_no_delete;",
]
POSTGRES = [
    """CREATE FUNCTION cases_auditevent_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit events cannot be changed or deleted'; END; $$;""",
    """CREATE TRIGGER cases_auditevent_append_only BEFORE UPDATE OR DELETE ON cases_auditevent
       FOR EACH ROW EXECUTE FUNCTION cases_auditevent_refuse();""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS cases_auditevent_append_only ON cases_auditevent;",
    "DROP FUNCTION IF EXISTS cases_auditevent_refuse();",
]


def forwards(apps, schema_editor):
    statements = POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in statements:
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    statements = (
        POSTGRES_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    )
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("cases", "0002_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
