"""The search index of public cases, which Django's schema editor cannot describe: on
SQLite an FTS5 table over `search_tokens` kept in step by triggers; on PostgreSQL a tsvector
column generated from `search_tokens`, with a GIN index. See sotong/lib/search_text.py."""

from django.db import migrations

SQLITE = [
    """CREATE VIRTUAL TABLE portal_publiccase_fts USING fts5(
        search_tokens, content='portal_publiccase', content_rowid='case_id',
        tokenize='unicode61 remove_diacritics 0')""",
    """CREATE TRIGGER portal_publiccase_fts_insert AFTER INSERT ON portal_publiccase BEGIN
        INSERT INTO portal_publiccase_fts(rowid, search_tokens)
        VALUES (new.case_id, new.search_tokens);
    END""",
    """CREATE TRIGGER portal_publiccase_fts_delete AFTER DELETE ON portal_publiccase BEGIN
        INSERT INTO portal_publiccase_fts(portal_publiccase_fts, rowid, search_tokens)
        VALUES ('delete', old.case_id, old.search_tokens);
    END""",
    """CREATE TRIGGER portal_publiccase_fts_update AFTER UPDATE OF search_tokens
        ON portal_publiccase BEGIN
        INSERT INTO portal_publiccase_fts(portal_publiccase_fts, rowid, search_tokens)
        VALUES ('delete', old.case_id, old.search_tokens);
        INSERT INTO portal_publiccase_fts(rowid, search_tokens)
        VALUES (new.case_id, new.search_tokens);
    END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER portal_publiccase_fts_update",
    "DROP TRIGGER portal_publiccase_fts_delete",
    "DROP TRIGGER portal_publiccase_fts_insert",
    "DROP TABLE portal_publiccase_fts",
]
POSTGRESQL = [
    # array_to_tsvector takes the tokens as lexemes as they are: no parser, no stemming.
    """ALTER TABLE portal_publiccase ADD COLUMN search_vector tsvector
        GENERATED ALWAYS AS (array_to_tsvector(string_to_array(search_tokens, ' '))) STORED""",
    "CREATE INDEX portal_publiccase_search ON portal_publiccase USING gin (search_vector)",
]
POSTGRESQL_REVERSE = [
    "DROP INDEX portal_publiccase_search",
    "ALTER TABLE portal_publiccase DROP COLUMN search_vector",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRESQL}.get(vendor, []):
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}.get(vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_public_read_model")]

    operations = [migrations.RunPython(forwards, backwards)]
