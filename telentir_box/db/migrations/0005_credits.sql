-- Lead credits: an append-only ledger from which balances are derived, and the
-- reservations that hold credits while a /get-leads stream runs.

-- Credits held for one connector stream. leads_stored advances in the same transaction
-- as the objects it counts, so a crash leaves the exact count for settlement. holder
-- names the process streaming into it ('' once released); stripe_state tracks the
-- prepaid debit when Stripe holds the balance.
CREATE TABLE lead_credit_reservations (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    period             TEXT NOT NULL,
    requested          INTEGER NOT NULL CHECK (requested >= 0),
    allowance_reserved INTEGER NOT NULL CHECK (allowance_reserved >= 0),
    prepaid_reserved   INTEGER NOT NULL CHECK (prepaid_reserved >= 0),
    leads_stored       INTEGER NOT NULL DEFAULT 0 CHECK (leads_stored >= 0),
    stripe_state       TEXT NOT NULL DEFAULT 'none'
                       CHECK (stripe_state IN ('none', 'pending', 'debited', 'void')),
    holder             TEXT NOT NULL DEFAULT '',
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    settled_at         TEXT,
    CHECK (leads_stored <= allowance_reserved + prepaid_reserved)
) STRICT;
CREATE INDEX lead_credit_reservations_open ON lead_credit_reservations (created_at)
    WHERE settled_at IS NULL;

-- Every movement of credits. Amounts are positive; kind and source give the sign:
-- grant adds prepaid credits, reserve holds them, consume spends what was held and
-- refund returns the rest. Balances are sums over this table, never stored.
CREATE TABLE credit_ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'consume', 'refund')),
    source         TEXT NOT NULL CHECK (source IN ('allowance', 'prepaid')),
    amount         INTEGER NOT NULL CHECK (amount >= 0),
    period         TEXT NOT NULL,
    user_id        TEXT NOT NULL DEFAULT '',
    reservation_id TEXT REFERENCES lead_credit_reservations (id),
    note           TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (kind != 'grant' OR source = 'prepaid')
) STRICT;
CREATE INDEX credit_ledger_by_period ON credit_ledger (period, source, kind);
CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id);

CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'the credit ledger is append-only');
END;
CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'the credit ledger is append-only');
END;
