"""Account settings: secrets encrypted at rest, decrypted only for the connector, never
shown again (admin, repr, str), and the key from SOTONG_CREDENTIALS_KEY or SECRET_KEY."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import Client

from sotong.channels.credentials import (
    CredentialsUnreadable,
    account_config,
    set_account_setting,
)
from sotong.channels.models import AccountSetting
from sotong.directory.models import Account, Officer
from sotong.errors import InvalidInput

SECRET = "app-secret-do-not-leak-8d1e"


@pytest.fixture
def page(directory) -> Account:
    return Account.objects.get(channel__code="facebook", handle="seoulcity")


def stored_column(setting: AccountSetting) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT stored_value FROM {AccountSetting._meta.db_table} WHERE id = %s", [setting.pk]
        )
        return cursor.fetchone()[0]


def test_secret_round_trips_encrypted(page):
    setting = set_account_setting(page, "app_secret", SECRET)
    plain = set_account_setting(page, "page_id", "104512345678901")
    assert setting.secret and not plain.secret
    column = stored_column(setting)
    assert SECRET not in column and column.startswith("gAAAAA")  # a Fernet token
    assert stored_column(plain) == "104512345678901"
    config = account_config(page)
    assert (config.platform, config.handle) == ("meta", "seoulcity")
    assert config.get("app_secret") == SECRET
    assert config.get("page_id") == "104512345678901"


def test_a_new_value_replaces_the_old(page):
    set_account_setting(page, "app_secret", SECRET)
    set_account_setting(page, "app_secret", "the-new-one")
    assert AccountSetting.objects.filter(account=page).count() == 1
    assert account_config(page).get("app_secret") == "the-new-one"


def test_secrets_never_in_repr_or_str(page):
    setting = set_account_setting(page, "app_secret", SECRET)
    config = account_config(page)
    for text in (repr(config), str(config), repr(config.settings), repr(setting), str(setting)):
        assert SECRET not in text
    assert "app_secret" in repr(config)


def test_unknown_setting_is_refused(page):
    with pytest.raises(InvalidInput, match="not a setting"):
        set_account_setting(page, "password", "x")


def test_key_from_the_environment_setting_and_rotation(page, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SOTONG_CREDENTIALS_KEY = old
    set_account_setting(page, "app_secret", SECRET)
    settings.SOTONG_CREDENTIALS_KEY = f"{new},{old}"  # rotation: new first, old still reads
    assert account_config(page).get("app_secret") == SECRET
    settings.SOTONG_CREDENTIALS_KEY = new
    with pytest.raises(CredentialsUnreadable):
        account_config(page)


def test_derived_key_depends_on_secret_key(page, settings):
    settings.SOTONG_CREDENTIALS_KEY = ""
    set_account_setting(page, "app_secret", SECRET)
    assert account_config(page).get("app_secret") == SECRET
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    with pytest.raises(CredentialsUnreadable):
        account_config(page)


@pytest.fixture
def admin_client(directory) -> Client:
    admin = Officer.objects.create_superuser("root", "root@example.org", "pw-root")
    client = Client()
    client.force_login(admin)
    return client


def test_admin_shows_set_not_the_secret(page, admin_client):
    setting = set_account_setting(page, "app_secret", SECRET)
    set_account_setting(page, "page_id", "104512345678901")
    listing = admin_client.get("/admin/channels/accountsetting/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert SECRET not in html and setting.stored_value not in html
    assert "104512345678901" in html  # an ordinary setting is shown
    change = admin_client.get(f"/admin/channels/accountsetting/{setting.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert SECRET not in html and setting.stored_value not in html
    assert 'type="password"' in html


def test_admin_enters_and_keeps_secrets(page, admin_client):
    added = admin_client.post(
        "/admin/channels/accountsetting/add/",
        {"account": page.pk, "name": "verify_token", "new_value": "tok-123"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    setting = AccountSetting.objects.get(account=page, name="verify_token")
    assert setting.secret and "tok-123" not in stored_column(setting)
    # Saving without a new value keeps the stored one.
    kept = admin_client.post(
        f"/admin/channels/accountsetting/{setting.pk}/change/", {"new_value": ""}
    )
    assert kept.status_code == 302
    assert account_config(page).get("verify_token") == "tok-123"
    replaced = admin_client.post(
        f"/admin/channels/accountsetting/{setting.pk}/change/", {"new_value": "tok-456"}
    )
    assert replaced.status_code == 302
    assert account_config(page).get("verify_token") == "tok-456"


def test_admin_refuses_a_setting_the_connector_does_not_have(page, admin_client):
    answer = admin_client.post(
        "/admin/channels/accountsetting/add/",
        {"account": page.pk, "name": "password", "new_value": "x"},
    )
    assert answer.status_code == 200  # the form again, with the error
    assert not AccountSetting.objects.exists()
