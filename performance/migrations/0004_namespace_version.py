from django.db import migrations, models


class Migration(migrations.Migration):
    """Invalidations are counted by database triggers (``NamespaceVersion``) instead of rows
    written by the service (``PendingInvalidation``): any committed change is counted, whoever
    makes it. The triggers themselves are installed after every ``migrate`` (post_migrate)."""

    dependencies = [
        ("performance", "0003_cache"),
    ]

    operations = [
        migrations.CreateModel(
            name="NamespaceVersion",
            fields=[
                ("namespace", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
                ("xact", models.BigIntegerField(blank=True, null=True)),
            ],
            options={"verbose_name": "namespace version"},
        ),
        migrations.DeleteModel(name="PendingInvalidation"),
    ]
