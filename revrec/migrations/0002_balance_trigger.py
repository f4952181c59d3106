"""PostgreSQL refuses a journal entry that does not balance per currency.

A constraint trigger, DEFERRABLE INITIALLY DEFERRED, on the lines: it fires at commit (after the
entry and all its lines are written), once per touched row, and checks that entry's lines sum to
as much debit as credit in every currency. An unbalanced entry aborts the whole transaction."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION revrec_check_entry_balanced() RETURNS trigger AS $$
DECLARE
    target bigint;
    bad record;
BEGIN
    IF TG_OP = 'DELETE' THEN target := OLD.entry_id; ELSE target := NEW.entry_id; END IF;
    SELECT currency, SUM(debit) AS debits, SUM(credit) AS credits INTO bad
      FROM revrec_journalline WHERE entry_id = target
     GROUP BY currency HAVING SUM(debit) <> SUM(credit) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
            target, bad.currency, bad.debits, bad.credits USING ERRCODE = '23514';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.entry_id <> NEW.entry_id THEN
        SELECT currency, SUM(debit) AS debits, SUM(credit) AS credits INTO bad
          FROM revrec_journalline WHERE entry_id = OLD.entry_id
         GROUP BY currency HAVING SUM(debit) <> SUM(credit) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'journal entry % does not balance in %', OLD.entry_id, bad.currency USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER revrec_journal_balanced
    AFTER INSERT OR UPDATE OR DELETE ON revrec_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION revrec_check_entry_balanced();
"""

REVERSE = """
DROP TRIGGER IF EXISTS revrec_journal_balanced ON revrec_journalline;
DROP FUNCTION IF EXISTS revrec_check_entry_balanced();
"""


class Migration(migrations.Migration):
    dependencies = [("revrec", "0001_initial")]
    operations = [migrations.RunSQL(FUNCTION, REVERSE)]
