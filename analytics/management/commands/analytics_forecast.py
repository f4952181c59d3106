from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics import forecast
from analytics.forecast import revenue_forecast
from analytics.mrr import add_months, month_start


def _month(value: str) -> date:
    try:
        year, month = (int(p) for p in value.split("-")[:2])
        return date(year, month, 1)
    except ValueError as exc:
        raise CommandError(f"not a month YYYY-MM: {value}") from exc


class Command(BaseCommand):
    help = "Print the revenue forecast (committed MRR + ETS usage forecast) and, with --backtest, its MAPE."

    def add_arguments(self, parser):
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--from", dest="start", help="first forecast month YYYY-MM (default: next month)")
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--backtest", action="store_true", help="hold out the last months of history and print MAPE")
        parser.add_argument("--holdout", type=int, default=3)

    def handle(self, *args, currency, start, months, backtest: bool, holdout, **options):
        start = _month(start) if start else add_months(month_start(timezone.now().date()), 1)
        result = revenue_forecast(currency=currency, start=start, months=months)
        self.stdout.write(f"Forecast {currency} from {result['from']} (committed MRR {result['committed_mrr']}; "
                          f"usage models {result['methods']})")
        for row in result["results"]:
            self.stdout.write(f"  {row['month']}  committed {row['committed_mrr']:>12}  usage {row['usage_forecast']:>12}"
                              f"  total {row['total']:>12}")
        if backtest:
            bt = forecast.backtest(
                currency=currency, through=add_months(start, -1), holdout=holdout)
            self.stdout.write(f"Back-test: last {holdout} month(s) to {bt['through']}, models {bt['methods']}")
            for row in bt["months"]:
                self.stdout.write(f"  {row['month']}  actual {row['actual']:>12}  forecast {row['forecast']:>12}  APE {row['ape']}")
            self.stdout.write(f"MAPE {bt['mape']}")
