"""Open311 GeoReport v2 URLs (under /open311/v2/ in the portal's URL map): each resource
ends in its format, `.json` or `.xml`; anything else here is the spec's 404."""

from django.urls import re_path

from sotong.portal.open311 import views

urlpatterns = [
    re_path(r"^services\.(?P<fmt>[^/.]+)$", views.service_list, name="open311_services"),
    re_path(
        r"^services/(?P<code>[^/]+)\.(?P<fmt>[^/.]+)$",
        views.service_definition,
        name="open311_service",
    ),
    re_path(r"^requests\.(?P<fmt>[^/.]+)$", views.service_requests, name="open311_requests"),
    re_path(
        r"^requests/(?P<number>[^/]+)\.(?P<fmt>[^/.]+)$",
        views.service_request,
        name="open311_request",
    ),
    re_path(
        r"^tokens/(?P<token>[^/]+)\.(?P<fmt>[^/.]+)$", views.token_status, name="open311_token"
    ),
    re_path(r"^(?P<rest>.*)$", views.not_found, name="open311_not_found"),
]
