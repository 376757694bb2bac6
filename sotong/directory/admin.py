"""The directory in the Django admin, where a city's administrator edits it (in Korean)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from sotong.directory.models import Account, CaseType, Category, Channel, Officer, TriageRule, Unit


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "kind", "phone", "requires_approval", "active"]
    list_filter = ["kind", "requires_approval", "active"]
    search_fields = ["name", "name_en", "code", "district_name"]


@admin.register(Officer)
class OfficerAdmin(UserAdmin):
    list_display = ["username", "last_name", "first_name", "unit", "role", "is_active"]
    list_filter = ["role", "unit__kind", "is_active"]
    list_select_related = ["unit"]
    fieldsets = [
        *UserAdmin.fieldsets,  # type: ignore[misc]
        (_("Sotong"), {"fields": ["unit", "role", "phone"]}),
    ]
    add_fieldsets = [
        *UserAdmin.add_fieldsets,
        (_("Sotong"), {"fields": ["unit", "role"]}),
    ]


@admin.register(CaseType)
class CaseTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "deadline_amount", "deadline_unit", "urgent"]


class TriageRuleInline(admin.TabularInline):
    model = TriageRule
    extra = 1


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "owner", "district_matter", "case_type", "active"]
    list_filter = ["district_matter", "case_type", "active"]
    list_select_related = ["owner", "case_type"]
    search_fields = ["name", "code"]
    inlines = [TriageRuleInline]


@admin.register(TriageRule)
class TriageRuleAdmin(admin.ModelAdmin):
    list_display = ["text", "kind", "category", "weight"]
    list_filter = ["kind", "category"]
    search_fields = ["text"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "enabled"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["handle", "name", "channel", "unit", "replies_via", "active"]
    list_filter = ["channel", "active"]
    list_select_related = ["channel", "unit", "replies_via__channel"]
    search_fields = ["handle", "name"]
