# Coupon redemptions moved to invoicing (invoicing 0005 takes the models over). State only: the four
# tables stay where they are, under their catalog_ names (the invoicing models set db_table).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0004_billable_metric_allow_negative'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='HistoricalCouponUsage'),
                migrations.DeleteModel(name='CouponUsage'),
                migrations.DeleteModel(name='HistoricalCouponRedemption'),
                migrations.DeleteModel(name='CouponRedemption'),
            ],
            database_operations=[],
        ),
    ]
