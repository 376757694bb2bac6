"""The accounts' connector settings: the one way to store them (secret ones encrypted with
Fernet) and to read them back decrypted for a connector (`account_config`).

Secrets are decrypted only here, into a mapping whose repr names the settings but never
shows their values, so a traceback, a debug page or a log line cannot leak them.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction

from sotong.channels.connectors.base import AccountConfig, Connector, SettingField
from sotong.channels.connectors.registry import connector_for_channel
from sotong.channels.models import AccountSetting, PollState
from sotong.directory.models import Account
from sotong.errors import InvalidInput, SotongError


class CredentialsUnreadable(SotongError):
    """Stored secrets cannot be decrypted with the current key: the key changed."""

    code = "credentials_unreadable"
    status = 503  # platforms deliver again later; nothing is lost while the key is fixed


class SecretSettings(dict[str, str]):
    """Decrypted settings; the repr names them, never their values."""

    def __repr__(self) -> str:
        return f"<settings {', '.join(sorted(self))}>"

    __str__ = __repr__


@cache
def _fernet(key_setting: str, secret_key: str) -> MultiFernet:
    keys = [k.strip() for k in key_setting.split(",") if k.strip()]
    if not keys:
        # No key of its own: derive one from SECRET_KEY with HKDF-SHA256 (a KDF, not the
        # secret key itself, and bound to this use by `info`). Changing SECRET_KEY then
        # makes the stored credentials unreadable; set SOTONG_CREDENTIALS_KEY to avoid it.
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"sotong",
            info=b"sotong channel credentials v1",
        ).derive(secret_key.encode("utf-8"))
        keys = [base64.urlsafe_b64encode(derived).decode("ascii")]
    return MultiFernet([Fernet(key.encode("ascii")) for key in keys])


def fernet() -> MultiFernet:
    """The cipher of the current settings (the first key encrypts, every key decrypts)."""
    return _fernet(settings.SOTONG_CREDENTIALS_KEY, settings.SECRET_KEY)


def connector_of(account: Account) -> Connector | None:
    return connector_for_channel(account.channel.code)


def setting_fields(account: Account) -> dict[str, SettingField]:
    """The settings the account's connector asks for, by name (none without a connector)."""
    connector = connector_of(account)
    if connector is None:
        return {}
    # Settings every account has whatever its platform (receipts); imported here because
    # receipts → outbox → this module.
    from sotong.channels.receipts import ACCOUNT_SETTINGS

    return {f.name: f for f in (*connector.settings_fields, *ACCOUNT_SETTINGS)}


def set_account_setting(account: Account, name: str, value: str) -> AccountSetting:
    """Store one setting of an account, encrypted when its connector says it is secret."""
    fields = setting_fields(account)
    field = fields.get(name)
    if field is None:
        known = ", ".join(sorted(fields)) or "none"
        raise InvalidInput(
            f"'{name}' is not a setting of {account}'s connector (known: {known})", field="name"
        )
    stored = fernet().encrypt(value.encode("utf-8")).decode("ascii") if field.secret else value
    with transaction.atomic():
        setting, _ = AccountSetting.objects.update_or_create(
            account=account, name=name, defaults={"secret": field.secret, "stored_value": stored}
        )
        # Settings entered again (a renewed password or token, a corrected user name): an
        # account stopped for re-authorization, or backing off, is polled again at once.
        PollState.objects.filter(account=account).resume()
    return setting


def account_config(account: Account) -> AccountConfig:
    """What the account's connector needs: platform, handle and settings, decrypted."""
    connector = connector_of(account)
    values = SecretSettings()
    cipher = fernet()
    for setting in AccountSetting.objects.filter(account=account):
        if setting.secret:
            try:
                values[setting.name] = cipher.decrypt(setting.stored_value.encode()).decode()
            except InvalidToken:
                raise CredentialsUnreadable(
                    f"the stored '{setting.name}' of {account} cannot be decrypted: "
                    "SOTONG_CREDENTIALS_KEY or SECRET_KEY changed; enter it again"
                ) from None
        else:
            values[setting.name] = setting.stored_value
    platform = connector.platform if connector else account.channel.code
    return AccountConfig(platform=platform, handle=account.handle, settings=values)
