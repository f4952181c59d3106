from django.db import migrations


def create_default(apps, schema_editor):
    DunningPolicy = apps.get_model("dunning", "DunningPolicy")
    if not DunningPolicy.objects.filter(is_default=True).exists():
        DunningPolicy.objects.create(name="Default", is_default=True)


class Migration(migrations.Migration):
    dependencies = [("dunning", "0001_cases_policies_steps")]
    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
