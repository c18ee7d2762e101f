"""``path("mizan-hub/", include("mizan_hub.urls"))``."""

from django.urls import path

from . import views

app_name = "mizan_hub"

urlpatterns = [
    path("token/", views.token_view, name="token"),
    path("subscription-token/<str:scope>/<str:name>/", views.subscription_token_view,
         name="subscription-token"),
]
