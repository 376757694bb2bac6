"""URL map: public portal at / (with open data and Open311, sotong/portal/urls.py), officers' workbench at /work/, connectors' API at /api/v1/,
platforms' webhooks at /hooks/<platform>/<account handle>/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from sotong.cases import api as case_api
from sotong.channels import hooks
from sotong.inbox import api as inbox_api
from sotong.workbench import connectors as work_connectors
from sotong.workbench import intake
from sotong.workbench import views as work

work_patterns = [
    path("", work.home, name="home"),
    path("triage/", work.triage_queue, name="triage"),
    path("triage/<int:pk>/review/", work.triage_review, name="triage_review"),
    path("inbox/", work.inbox, name="inbox"),
    path("cases/<int:pk>/", work.case_detail, name="case"),
    path("cases/<int:pk>/check-answer/", work.check_answer, name="check_answer"),
    path("cases/<int:pk>/<str:action>/", work.case_action, name="case_action"),
    path("connectors/", work_connectors.status, name="connectors"),
    path("connectors/<int:pk>/switch/", work_connectors.switch, name="connector_switch"),
    path("connectors/<int:pk>/resume/", work_connectors.resume, name="connector_resume"),
    path(
        "connectors/<int:pk>/settings/", work_connectors.account_settings, name="account_settings"
    ),
    path("outbox/", work_connectors.outbox, name="outbox"),
    path("intake/imports/", intake.import_list, name="imports"),
    path("intake/imports/<int:pk>/", intake.import_batch, name="import_batch"),
    path("intake/imports/<int:pk>/start/", intake.import_start, name="import_start"),
    path("intake/imports/<int:pk>/progress/", intake.import_progress, name="import_progress"),
    path("intake/imports/<int:pk>/rejected.csv", intake.import_rejected, name="import_rejected"),
    path("intake/manual/", intake.manual_entry, name="manual_entry"),
]

api_patterns = [
    path("messages", inbox_api.post_message, name="messages"),
    path("cases/<int:pk>", case_api.get_case, name="case"),
    path("cases/<int:pk>/<str:action>", case_api.case_action, name="case_action"),
]

urlpatterns = [
    path("", include("sotong.portal.urls")),
    path("work/", include((work_patterns, "workbench"))),
    path("api/v1/", include((api_patterns, "api"))),
    path("hooks/<slug:platform>/<str:handle>/", hooks.receive, name="hook"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
