from django.contrib import admin

from sotong.triage.models import TriageCorrection, TriageDecision


@admin.register(TriageDecision)
class TriageDecisionAdmin(admin.ModelAdmin):
    list_display = ["message", "relevant", "category", "unit", "confidence", "review", "engine"]
    list_filter = ["review", "relevant", "engine"]
    list_select_related = ["message__channel", "category", "unit"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TriageCorrection)
class TriageCorrectionAdmin(admin.ModelAdmin):
    list_display = ["message", "field", "before", "after", "corrected_by", "corrected_at"]
    list_filter = ["field"]

    def has_change_permission(self, request, obj=None):
        return False
