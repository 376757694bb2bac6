from django.contrib import admin

from sotong.cases.models import AuditEvent, Case


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    """Read-only: cases change through the workflow on the workbench, never by hand here."""

    list_display = ["pk", "status", "unit", "officer", "category", "urgent", "deadline_at"]
    list_filter = ["status", "urgent", "unit__kind"]
    list_select_related = ["unit", "officer", "category"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "case", "action", "actor_label"]
    list_filter = ["action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
