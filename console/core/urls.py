from django.urls import path

from console.core import views

urlpatterns = [
    path("healthz", views.health, name="health"),
]
