from django.contrib import admin

from sotong.inbox.models import ConnectorToken, Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["pk", "channel", "account", "author_handle", "received_at", "triage_state"]
    list_filter = ["channel", "triage_state"]
    list_select_related = ["channel", "account__channel"]
    search_fields = ["external_id", "author_handle"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request):  # messages arrive through ingest only
        return False


@admin.register(ConnectorToken)
class ConnectorTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "active", "created_at", "last_used_at"]
    readonly_fields = ["created_at", "last_used_at"]

    def has_add_permission(self, request):  # created with `sotong create-token`, shown once
        return False
