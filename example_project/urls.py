from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("jobs/", include("django_jobs.urls")),  # job status for polling clients
    path("", include("example_project.demo.urls")),
]
