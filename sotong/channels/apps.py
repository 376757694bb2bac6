from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsConfig(AppConfig):
    name = "sotong.channels"
    label = "channels"
    verbose_name = _("channels")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from sotong.channels.models import AccountSetting
        from sotong.channels.selectors import forget_hook_targets
        from sotong.directory.models import Account, Channel

        for model in (Account, AccountSetting, Channel):
            post_save.connect(forget_hook_targets, sender=model, dispatch_uid=f"hooks-{model}")
            post_delete.connect(forget_hook_targets, sender=model, dispatch_uid=f"hooks-{model}-")
