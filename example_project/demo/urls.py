from django.urls import path

from example_project.demo import views

urlpatterns = [
    path("", views.home, name="demo-home"),
    path("report/", views.report_page, name="demo-report"),
    path("report/start/", views.start_report, name="demo-report-start"),
]
