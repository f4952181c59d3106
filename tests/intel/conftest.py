from tests.invoicing.conftest import World, _fresh_partition_cache, world  # noqa: F401 (fixtures)
