from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="deviceconnection",
            name="next_cert_fingerprint",
            field=models.CharField(
                blank=True,
                help_text="A renewed certificate, accepted (and promoted) at its first use",
                max_length=128,
            ),
        ),
    ]
