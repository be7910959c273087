"""URL map of the console. Each app owns its own urls module.

* ``/`` and the pages below it: the dashboard (console/dashboard/urls.py)
* ``/api/v1/``: the REST API (console/api/urls.py), ``/api/schema/`` its
  OpenAPI document and ``/api/docs/`` the browsable docs
* ``/healthz``: the health probe (console/core)
* ``/metrics``: Prometheus metrics, bearer token (console/metrics)
* ``/admin/``: development only, read-only (console/accounts/admin_site.py)
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("console.api.urls")),
    path("", include("console.core.urls")),
    path("", include("console.metrics.urls")),
    path("", include("console.dashboard.urls")),
]

if not settings.PRODUCTION:
    # Production has no Django admin: it would change state around the audited
    # service functions (docs/security.md, "Console sign-in and the admin").
    urlpatterns.insert(2, path("admin/", admin.site.urls))
