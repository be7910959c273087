from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "console.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Cairn users and roles"

    def ready(self):
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from console.accounts import signals

        user_logged_in.connect(signals.audit_login, dispatch_uid="cairn-audit-login")
        user_login_failed.connect(
            signals.audit_login_failed, dispatch_uid="cairn-audit-login-failed"
        )
        user_locked_out.connect(signals.audit_locked_out, dispatch_uid="cairn-audit-locked-out")
