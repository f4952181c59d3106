from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing_site.health import healthz

api_v1 = [
    path("", include("customers.urls")),
    path("", include("catalog.urls")),
    path("", include("usage.urls")),
    path("", include("subscriptions.urls")),
    path("", include("payments.urls")),
    path("", include("invoicing.urls")),
    path("", include("revrec.urls")),
    path("", include("analytics.urls")),
    path("", include("dunning.urls")),
    path("", include("webhooks.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("", include("backoffice.urls")),
]

handler404 = "common.errors.json_not_found"
handler500 = "common.errors.json_server_error"

admin.site.site_header = "Ledgerline back office"
admin.site.site_title = "Ledgerline"
admin.site.index_title = "Billing, collections and revenue"
