"""Usage writes, one module per concern (usage/README.md):

- `ingest`: `event_ingest`, `event_ingest_batch` (the API's services), results, MAX_BATCH;
- `pipeline`: the set-based path they share (one lookup, validation, one insert that also folds
  the events into the daily rollups);
- `validation`: parsing and validating events in Python, reason codes, per-field errors;
- `payload`: exact JSON text and the payload hash (duplicate vs conflict);
- `dead_letters`: storing rejected bodies, replaying them;
- `late`: marking late events billed.
The rollup rebuild and statistics refresh are in `usage/rollups.py`, partitions in `usage/partitioning.py`.

Import from the modules (`from usage.services.ingest import event_ingest`); the package itself exports nothing.
"""
