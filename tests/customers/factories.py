import factory

from customers.models import Customer


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cus_{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    currency = "USD"
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    timezone = "UTC"
    country = "US"
