from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy


class LoginView(auth_views.LoginView):
    template_name = "backoffice/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("backoffice:dashboard")  # without ?next=, not LOGIN_REDIRECT_URL (/accounts/profile/)


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("backoffice:login")
