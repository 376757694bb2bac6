"""The public site's URLs: pages, the web form, open data and the API description."""

from django.urls import include, path

from sotong.portal import open_data, views, writing

app_name = "portal"

urlpatterns = [
    path("", views.overview, name="home"),
    path("live/overview.json", views.overview_live, name="overview_live"),
    path("cases/", views.case_list, name="cases"),
    path("cases/<str:number>/", views.case_page, name="case"),
    path("language/<str:code>/", views.choose_language, name="language"),
    path("write/", writing.write, name="write"),
    path("receipt/<str:token>/", writing.receipt, name="receipt"),
    path("data/", open_data.index, name="data"),
    path("data/cases.<str:fmt>", open_data.cases, name="data_cases"),
    path("data/statistics.<str:fmt>", open_data.statistics, name="data_statistics"),
    path("api/openapi.json", open_data.api_description, name="openapi"),
    path("open311/v2/", include("sotong.portal.open311.urls")),
]
