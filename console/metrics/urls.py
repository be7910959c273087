from django.urls import path

from console.metrics import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
