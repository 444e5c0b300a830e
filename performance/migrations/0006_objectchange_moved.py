from django.db import migrations, models


class Migration(migrations.Migration):
    """The triggers also note whether a change may move its object in a list (an insert, a
    delete, a change of a field the lists filter, search or order by): such a change ends every
    list page, any other only the pages that show the object. The triggers are installed again
    after this migrate."""

    dependencies = [
        ("performance", "0005_object_change"),
    ]

    operations = [
        migrations.AddField(
            model_name="objectchange",
            name="moved",
            field=models.BooleanField(default=False),
        ),
    ]
