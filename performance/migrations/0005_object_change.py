from django.db import migrations, models


class Migration(migrations.Migration):
    """The triggers note which object each counted change touched (``ObjectChange``), so that a
    write to one workstation invalidates that workstation's responses and the collections, not
    every other workstation's. The triggers are installed again after this migrate."""

    dependencies = [
        ("performance", "0004_namespace_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="ObjectChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("namespace", models.CharField(max_length=100)),
                ("version", models.BigIntegerField()),
                ("object_id", models.TextField(blank=True)),
            ],
            options={"verbose_name": "object change"},
        ),
        migrations.AddConstraint(
            model_name="objectchange",
            constraint=models.UniqueConstraint(
                fields=("namespace", "version", "object_id"),
                name="performance_objectchange_once",
            ),
        ),
    ]
