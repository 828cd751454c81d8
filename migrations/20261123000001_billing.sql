-- The billing mirror and the business state built from it.
--
-- Every mirror table keeps what its row was last written from: `stripe_version` (the event's
-- `created`) and `object_time` (the latest of the object's own time fields). An event whose
-- (stripe_version, object_time) is lower than the row's is stale and changes nothing; an equal
-- pair (a same-second tie) is applied.

ALTER TABLE customers ADD COLUMN object_time bigint NOT NULL DEFAULT 0;

-- A manual ledger adjustment changes state without a Stripe event: it names its actor instead.
ALTER TABLE audit_log ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN actor text;

CREATE TABLE payment_methods (
    id              text        PRIMARY KEY,   -- pm_…
    customer_id     text,                      -- NULL once detached
    type            text        NOT NULL,
    card_brand      text,
    card_last4      text,
    livemode        boolean     NOT NULL,
    object          jsonb       NOT NULL,
    stripe_version  timestamptz NOT NULL,
    object_time     bigint      NOT NULL,
    last_event_id   text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_customer_idx ON payment_methods (customer_id);

CREATE TABLE subscriptions (
    id                    text        PRIMARY KEY,   -- sub_…
    customer_id           text        NOT NULL,
    status                text        NOT NULL,      -- Stripe's: trialing, active, past_due, paused, canceled, …
    status_since          timestamptz NOT NULL,      -- event time of the last status change
    cancel_at_period_end  boolean     NOT NULL DEFAULT false,
    current_period_start  timestamptz,               -- the subscription's (≤ 2025-02-24) or its items' earliest
    current_period_end    timestamptz,
    trial_end             timestamptz,
    canceled_at           timestamptz,
    ended_at              timestamptz,
    livemode              boolean     NOT NULL,
    object                jsonb       NOT NULL,
    stripe_version        timestamptz NOT NULL,
    object_time           bigint      NOT NULL,
    last_event_id         text        NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id);

-- The items of a subscription's latest applied state; items no longer in it are removed.
CREATE TABLE subscription_items (
    id                    text        PRIMARY KEY,   -- si_…
    subscription_id       text        NOT NULL REFERENCES subscriptions (id),
    price_id              text        NOT NULL,
    product_id            text,
    quantity              bigint,
    current_period_start  timestamptz,               -- on the item from 2025-03-31
    current_period_end    timestamptz
);
CREATE INDEX subscription_items_subscription_idx ON subscription_items (subscription_id);

CREATE TABLE invoices (
    id                 text        PRIMARY KEY,      -- in_…
    customer_id        text,
    subscription_id    text,                         -- invoice.subscription, or parent.subscription_details.subscription
    payment_intent_id  text,                         -- invoice.payment_intent, or the default invoice payment
    status             text,                         -- draft, open, paid, void, uncollectible
    billing_reason     text,
    amount_due         bigint      NOT NULL,
    amount_paid        bigint      NOT NULL,
    amount_remaining   bigint      NOT NULL,
    currency           text        NOT NULL,
    attempt_count      integer     NOT NULL DEFAULT 0,
    customer_email     text,
    paid_at            timestamptz,
    livemode           boolean     NOT NULL,
    object             jsonb       NOT NULL,
    stripe_version     timestamptz NOT NULL,
    object_time        bigint      NOT NULL,
    last_event_id      text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_subscription_idx ON invoices (subscription_id);

-- PaymentIntents (pi_…) and charges (ch_…), one row each.
CREATE TABLE payments (
    id                 text        PRIMARY KEY,
    kind               text        NOT NULL CHECK (kind IN ('payment_intent', 'charge')),
    payment_intent_id  text,                         -- the PaymentIntent itself, or the charge's
    customer_id        text,
    invoice_id         text,
    amount             bigint      NOT NULL,
    amount_received    bigint,
    amount_refunded    bigint      NOT NULL DEFAULT 0,
    currency           text        NOT NULL,
    status             text        NOT NULL,
    failure_code       text,
    failure_message    text,
    receipt_email      text,
    livemode           boolean     NOT NULL,
    object             jsonb       NOT NULL,
    stripe_version     timestamptz NOT NULL,
    object_time        bigint      NOT NULL,
    last_event_id      text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_payment_intent_idx ON payments (payment_intent_id);

CREATE TABLE refunds (
    id                 text        PRIMARY KEY,      -- re_…
    charge_id          text        NOT NULL,
    payment_intent_id  text,
    amount             bigint      NOT NULL,
    currency           text        NOT NULL,
    status             text,
    reason             text,
    created            timestamptz NOT NULL,
    object             jsonb       NOT NULL,
    last_event_id      text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_charge_idx ON refunds (charge_id);

CREATE TABLE checkout_sessions (
    id                   text        PRIMARY KEY,    -- cs_…
    mode                 text        NOT NULL,       -- payment, subscription, setup
    status               text,                       -- open, complete, expired
    payment_status       text,                       -- paid, unpaid, no_payment_required
    customer_id          text,
    customer_email       text,
    client_reference_id  text,
    order_reference      text,                       -- client_reference_id, else metadata.order_id
    payment_intent_id    text,
    subscription_id      text,
    invoice_id           text,
    amount_total         bigint,
    currency             text,
    livemode             boolean     NOT NULL,
    object               jsonb       NOT NULL,
    stripe_version       timestamptz NOT NULL,
    object_time          bigint      NOT NULL,
    last_event_id        text        NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_payment_intent_idx ON checkout_sessions (payment_intent_id);

-- Business orders. The host application creates them `pending` beforehand (see
-- docs/operations.md), or Billhook creates them from a completed Checkout Session. The status is
-- recomputed from the mirror whenever an event about the order is applied, so it is the same
-- whatever order the events arrived in. `fulfilled` and `fulfillment_failed` are the
-- application's to set; Billhook keeps them until a refund.
CREATE TABLE orders (
    id               text        PRIMARY KEY DEFAULT ('ord_' || replace(gen_random_uuid()::text, '-', '')),
    reference        text        UNIQUE,             -- the application's own id
    checkout_ref     text        UNIQUE,             -- Checkout Session (cs_…) or PaymentIntent (pi_…) id
    payment_intent_id text,                          -- learned from the session
    customer_id      text,
    customer_email   text,
    amount           bigint,                         -- minor units
    currency         text,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN
                       ('pending', 'paid', 'fulfilled', 'failed', 'cancelled', 'refunded',
                        'partially_refunded', 'fulfillment_failed')),
    amount_refunded  bigint      NOT NULL DEFAULT 0,
    failure_reason   text,
    paid_at          timestamptz,
    created_by       text        NOT NULL DEFAULT 'application' CHECK (created_by IN ('application', 'checkout')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (reference IS NOT NULL OR checkout_ref IS NOT NULL)
);
CREATE INDEX orders_payment_intent_idx ON orders (payment_intent_id);

-- Credits and debits. One entry per (source, kind): the same payment can never count twice.
-- Refund debits are written as steps towards the refunded total (source `ch_…:refunded:<total>`),
-- so they add up to the same sum in whatever order refund events arrive.
CREATE TABLE ledger_entries (
    id           bigserial   PRIMARY KEY,
    customer_id  text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('purchase_credit', 'invoice_credit', 'refund_debit', 'manual')),
    source       text        NOT NULL,               -- cs_…, in_…, ch_…:refunded:<n>, manual:<ulid>
    amount       bigint      NOT NULL,               -- positive credits, negative debits, in the ledger's unit
    unit         text        NOT NULL,               -- 'points' or a currency code (minor units)
    order_id     text,
    event_id     text,
    reason       text,
    created_by   text,                               -- the operator, for manual entries
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, kind)
);
CREATE INDEX ledger_entries_customer_idx ON ledger_entries (customer_id);

CREATE VIEW ledger_balances AS
    SELECT customer_id, unit, sum(amount) AS balance, count(*) AS entries
    FROM ledger_entries
    GROUP BY customer_id, unit;

-- Settings the views read. The worker writes them at start from its configuration.
CREATE TABLE billing_settings (
    singleton       boolean  PRIMARY KEY DEFAULT true CHECK (singleton),
    past_due_grace  interval NOT NULL DEFAULT interval '3 days'
);
INSERT INTO billing_settings DEFAULT VALUES;

-- What each customer is entitled to now: subscriptions that are active or trialing, or past_due
-- for less than the grace period, with their prices and products.
CREATE VIEW entitlements AS
    SELECT s.customer_id, s.id AS subscription_id, s.status, i.price_id, i.product_id, i.quantity,
           coalesce(i.current_period_end, s.current_period_end) AS current_period_end
    FROM subscriptions s
    JOIN subscription_items i ON i.subscription_id = s.id
    WHERE s.status IN ('active', 'trialing')
       OR (s.status = 'past_due'
           AND s.status_since > now() - (SELECT past_due_grace FROM billing_settings));
