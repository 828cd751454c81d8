"""The event stream the fault suite sends: billing stories as a real account delivers them,
built from Stripe's example objects (crates/billhook-testkit/fixtures/stripe) in both API
shapes, after crates/billhook-testkit/src/scenarios.rs, with ids unique per story.

Every story is consistent (its customer, payments, subscription and invoices name each other)
so ledger sums and final states mean something. Events are split into two waves: wave 2
holds what happens days later in real life (a renewal paid after dunning began, the success
of a payment that failed before), and wave 0 the customers, who exist before they buy (an
email about a refund or a trial goes to the customer's address, which Billhook learns from
the customer's event: processed later, the email is skipped for want of an address). Each
wave is sent shuffled with duplicates (some redelivered during the next wave); the sender
waits until a wave is applied (and, after wave 1, every dunning run has taken its timed
steps) before the next. Final states then do not depend on the order in which the system
happened to process things, only on what it processed, so a run with faults must end
exactly like a run without.
"""
import copy
import json
import os
import random

DAY = 86_400

# The 19 handled types (billhook_core::stripe::event_types::HANDLED); the suite checks that
# the stream covers them all.
HANDLED = [
    "charge.refunded", "checkout.session.completed", "checkout.session.expired",
    "customer.created", "customer.deleted", "customer.subscription.created",
    "customer.subscription.deleted", "customer.subscription.paused",
    "customer.subscription.resumed", "customer.subscription.trial_will_end",
    "customer.subscription.updated", "customer.updated", "invoice.paid",
    "invoice.payment_failed", "invoice.payment_succeeded", "payment_intent.payment_failed",
    "payment_intent.succeeded", "payment_method.attached", "payment_method.detached",
]
# Verified events of types Billhook does not handle: stored as `ignored`, no job.
UNHANDLED = ["product.created", "product.updated", "invoice.finalized"]

SHAPES = {"acacia": "2025-02-24.acacia", "dahlia": "2026-07-29.dahlia"}

STORIES = [
    "checkout_refunded", "partial_refund", "subscription_signup", "renewal_recovers",
    "renewal_never_recovers", "trial_pauses_resumes", "order_never_created",
    "payment_fails_then_succeeds", "checkout_expired", "customer_lifecycle",
]


class Fixtures:
    def __init__(self, root):
        self.root = root
        self.cache = {}

    def object(self, shape, name):
        key = (shape, name)
        if key not in self.cache:
            path = os.path.join(self.root, SHAPES[shape], name + ".json")
            with open(path) as f:
                self.cache[key] = json.load(f)
        return copy.deepcopy(self.cache[key])


class Story:
    """One customer's story: its events (in the order they happened) and what the
    application does before they arrive (orders it creates)."""

    def __init__(self, kind, number, shape, fixtures, t0):
        self.kind, self.number, self.shape, self.fx, self.t0 = kind, number, shape, fixtures, t0
        tag = "Chaos%05d" % number
        self.tag = tag
        self.customer = "cus_" + tag
        self.email = "buyer+%d@example.com" % number
        self.session = "cs_test_" + tag
        self.payment_intent = "pi_" + tag
        self.charge = "ch_" + tag
        self.subscription = "sub_" + tag
        self.item = "si_" + tag
        self.price = "price_" + tag
        self.product = "prod_" + tag
        self.first_invoice = "in_%sA" % tag
        self.renewal_invoice = "in_%sB" % tag
        self.payment_method = "pm_" + tag
        self.reference = "order_%d" % number
        self.orders = []  # (reference, checkout_ref) the application creates first
        self.events = []  # (wave, event)
        self.seq = 0
        getattr(self, "story_" + kind)()

    # The stories, after scenarios.rs (plus the types it does not cover).

    def story_checkout_refunded(self):
        self.orders.append((self.reference, self.session))
        self.add(self.customer_event("customer.created"))
        self.add(self.pi_event("payment_intent.succeeded", 5000))
        self.add(self.session_event("checkout.session.completed", "payment", 5000))
        self.add(self.charge_refunded(5000))

    def story_partial_refund(self):
        self.orders.append((self.reference, self.session))
        self.add(self.customer_event("customer.created"))
        self.add(self.pi_event("payment_intent.succeeded", 5000))
        self.add(self.session_event("checkout.session.completed", "payment", 5000))
        self.add(self.charge_refunded(2000))

    def story_subscription_signup(self):
        self.add(self.customer_event("customer.created"))
        self.add(self.pm_event("payment_method.attached"))
        self.add(self.sub_event("customer.subscription.created", "active", 0))
        self.add(self.invoice_event("invoice.paid", self.first_invoice, "paid", 1, 0))
        self.add(self.invoice_event("invoice.payment_succeeded", self.first_invoice, "paid", 1, 0))
        self.add(self.session_event("checkout.session.completed", "subscription", 2000))

    def story_renewal_recovers(self):
        self.add(self.customer_event("customer.created"))
        self.add(self.sub_event("customer.subscription.created", "active", 0))
        self.add(self.invoice_event("invoice.paid", self.first_invoice, "paid", 1, 0))
        self.add(self.invoice_event("invoice.payment_failed", self.renewal_invoice, "open", 1, 30))
        self.add(self.sub_event("customer.subscription.updated", "past_due", 30))
        self.add(self.invoice_event("invoice.paid", self.renewal_invoice, "paid", 2, 30), wave=2)
        self.add(self.sub_event("customer.subscription.updated", "active", 30), wave=2)

    def story_renewal_never_recovers(self):
        self.add(self.customer_event("customer.created"))
        self.add(self.sub_event("customer.subscription.created", "active", 0))
        self.add(self.invoice_event("invoice.paid", self.first_invoice, "paid", 1, 0))
        self.add(self.invoice_event("invoice.payment_failed", self.renewal_invoice, "open", 1, 30))
        self.add(self.sub_event("customer.subscription.updated", "past_due", 30))
        self.add(self.invoice_event("invoice.payment_failed", self.renewal_invoice, "open", 2, 30), wave=2)
        self.add(self.sub_event("customer.subscription.deleted", "canceled", 30), wave=2)

    def story_trial_pauses_resumes(self):
        self.add(self.customer_event("customer.created"))
        self.add(self.sub_event("customer.subscription.created", "trialing", 0))
        self.add(self.sub_event("customer.subscription.trial_will_end", "trialing", 0))
        self.add(self.pm_event("payment_method.attached"))
        # Later (the trial-ending email is only for a trial still running when that arrives).
        self.add(self.sub_event("customer.subscription.paused", "paused", 14), wave=2)
        self.add(self.sub_event("customer.subscription.resumed", "active", 20), wave=2)
        self.add(self.invoice_event("invoice.paid", self.renewal_invoice, "paid", 1, 20), wave=2)

    def story_order_never_created(self):
        self.add(self.session_event("checkout.session.completed", "payment", 5000))
        self.add(self.pi_event("payment_intent.succeeded", 5000))

    def story_payment_fails_then_succeeds(self):
        self.orders.append((self.reference, self.payment_intent))
        self.add(self.customer_event("customer.created"))
        self.add(self.pi_event("payment_intent.payment_failed", 5000))
        self.add(self.pi_event("payment_intent.succeeded", 5000), wave=2)

    def story_checkout_expired(self):
        self.orders.append((self.reference, self.session))
        self.add(self.customer_event("customer.created"))
        self.add(self.session_event("checkout.session.expired", "payment", 5000))

    def story_customer_lifecycle(self):
        self.add(self.customer_event("customer.created"))
        updated = self.customer_event("customer.updated")
        updated["data"]["object"]["name"] = "Jenny Rosen-Updated"
        self.add(updated)
        self.add(self.pm_event("payment_method.attached"))
        self.add(self.pm_event("payment_method.detached"))
        o = self.fx.object(self.shape, "deleted_customer")
        o["id"] = self.customer
        # Later: a deleted customer's event carries no name, so a name update processed after
        # it would be stale and the mirror's name would depend on processing order.
        self.add(self.envelope("customer.deleted", o), wave=2)
        product = self.fx.object(self.shape, "product")
        product["id"] = self.product
        self.add(self.envelope(UNHANDLED[self.number % len(UNHANDLED)], product))

    # Building blocks.

    def add(self, event, wave=1):
        if event["type"] == "customer.created":
            wave = 0  # customers exist before anything is bought (see Stream)
        event["created"] = self.t0 + self.seq
        self.seq += 1
        self.events.append((wave, event))

    def envelope(self, event_type, obj):
        n = len(self.events)
        return {
            "id": "evt_%s%02d%s" % (self.tag, n, self.shape[0]),
            "object": "event",
            "account": None,
            "api_version": SHAPES[self.shape],
            "created": self.t0,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def customer_event(self, event_type):
        o = self.fx.object(self.shape, "customer")
        o.update(id=self.customer, email=self.email, name="Jenny Rosen", created=self.t0)
        return self.envelope(event_type, o)

    def pm_event(self, event_type):
        o = self.fx.object(self.shape, "payment_method")
        o.update(id=self.payment_method, created=self.t0)
        o["customer"] = None if event_type.endswith("detached") else self.customer
        return self.envelope(event_type, o)

    def pi_event(self, event_type, amount):
        o = self.fx.object(self.shape, "payment_intent")
        o.update(id=self.payment_intent, amount=amount, currency="usd", customer=self.customer,
                 created=self.t0, canceled_at=None, next_action=None, receipt_email=self.email,
                 latest_charge=self.charge)
        if event_type.endswith("succeeded"):
            o.update(status="succeeded", amount_received=amount, last_payment_error=None)
        else:
            o.update(status="requires_payment_method", amount_received=0, last_payment_error={
                "type": "card_error", "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."})
        if self.shape == "acacia":
            o["invoice"] = None
        return self.envelope(event_type, o)

    def session_event(self, event_type, mode, amount):
        o = self.fx.object(self.shape, "checkout.session")
        completed = event_type.endswith("completed")
        o.update(id=self.session, mode=mode, status="complete" if completed else "expired",
                 payment_status="paid" if completed else "unpaid", amount_total=amount,
                 amount_subtotal=amount, currency="usd", created=self.t0,
                 customer_details={"email": self.email, "name": "Jenny Rosen"},
                 customer=self.customer)
        if mode == "subscription":
            o.update(payment_intent=None, subscription=self.subscription,
                     invoice=self.first_invoice, client_reference_id=None)
        else:
            o.update(payment_intent=self.payment_intent, subscription=None, invoice=None,
                     client_reference_id=self.reference)
        return self.envelope(event_type, o)

    def charge_refunded(self, amount_refunded):
        o = self.fx.object(self.shape, "charge")
        o.update(id=self.charge, amount=5000, amount_captured=5000,
                 amount_refunded=amount_refunded, refunded=amount_refunded == 5000,
                 currency="usd", customer=self.customer, payment_intent=self.payment_intent,
                 status="succeeded", created=self.t0)
        r = self.fx.object(self.shape, "refund")
        r.update(id="re_" + self.tag, amount=amount_refunded, currency="usd", charge=self.charge,
                 payment_intent=self.payment_intent, status="succeeded",
                 reason="requested_by_customer", created=self.t0 + 100)
        o["refunds"] = {"object": "list", "data": [r], "has_more": False,
                        "url": "/v1/charges/%s/refunds" % self.charge}
        return self.envelope("charge.refunded", o)

    def sub_event(self, event_type, status, period_day):
        o = self.fx.object(self.shape, "subscription")
        start = self.t0 + period_day * DAY
        end = start + 30 * DAY
        trial = status in ("trialing", "paused") or period_day == 14
        ended = status == "canceled"
        o.update(id=self.subscription, customer=self.customer, status=status, created=self.t0,
                 start_date=self.t0, cancel_at_period_end=False, pause_collection=None,
                 default_payment_method=None,
                 trial_start=self.t0 if trial else None,
                 trial_end=self.t0 + 14 * DAY if trial else None,
                 canceled_at=start + 10 * DAY if ended else None,
                 ended_at=start + 10 * DAY if ended else None)
        item = copy.deepcopy(o["items"]["data"][0])
        item.update(id=self.item, subscription=self.subscription, created=self.t0, quantity=1)
        item["price"].update(id=self.price, product=self.product, unit_amount=2000, currency="usd")
        item["plan"].update(id=self.price, product=self.product, currency="usd")
        if self.shape == "acacia":
            o.update(current_period_start=start, current_period_end=end)
        else:
            item.update(current_period_start=start, current_period_end=end)
        o["items"]["data"] = [item]
        o["items"]["url"] = "/v1/subscription_items?subscription=" + self.subscription
        return self.envelope(event_type, o)

    def invoice_event(self, event_type, invoice_id, status, attempt, period_day):
        o = self.fx.object(self.shape, "invoice")
        start = self.t0 + period_day * DAY
        paid = status == "paid"
        pi = "pi_" + invoice_id[3:]
        o.update(id=invoice_id, customer=self.customer, customer_email=self.email, status=status,
                 currency="usd", amount_due=2000, amount_paid=2000 if paid else 0,
                 amount_remaining=0 if paid else 2000, attempt_count=attempt,
                 billing_reason="subscription_create" if period_day == 0 else "subscription_cycle",
                 created=start, period_start=start, period_end=start + 30 * DAY)
        o["status_transitions"] = {
            "finalized_at": start + 3600,
            "paid_at": start + 3600 + attempt * DAY if paid else None,
            "voided_at": None, "marked_uncollectible_at": None}
        o["lines"]["data"][0]["amount"] = 2000
        o["lines"]["data"][0]["invoice"] = invoice_id
        if self.shape == "acacia":
            o.update(subscription=self.subscription, payment_intent=pi, paid=paid)
            o["lines"]["data"][0]["subscription"] = self.subscription
        else:
            o["parent"] = {"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"metadata": {},
                                                    "subscription": self.subscription}}
            p = self.fx.object("dahlia", "invoice_payment")
            p.update(id="inpay_" + invoice_id[3:], invoice=invoice_id, currency="usd",
                     amount_requested=2000, amount_paid=2000 if paid else None,
                     status="paid" if paid else "open",
                     payment={"type": "payment_intent", "payment_intent": pi})
            o["payments"] = {"object": "list", "data": [p], "has_more": False,
                             "url": "/v1/invoices/%s/payments" % invoice_id}
        return self.envelope(event_type, o)


class Stream:
    """The whole stream: stories, the orders to create, and the two waves of deliveries
    (event ids, in sending order, duplicates included)."""

    def __init__(self, fixtures_root, rounds, seed, t0, duplicate_rate=0.15):
        rng = random.Random(seed)
        fx = Fixtures(fixtures_root)
        self.stories = []
        number = 0
        for r in range(rounds):
            for i, kind in enumerate(STORIES):
                shape = "acacia" if (r + i) % 2 == 0 else "dahlia"
                self.stories.append(Story(kind, number, shape, fx, t0 + number * 10))
                number += 1
        self.bodies = {}  # event id -> body bytes (sent identically on every delivery)
        self.types = {}
        waves = {0: [], 1: [], 2: []}
        for story in self.stories:
            for wave, event in story.events:
                # Pretty-printed with two spaces, as Stripe sends it.
                self.bodies[event["id"]] = json.dumps(event, indent=2).encode()
                self.types[event["id"]] = event["type"]
                waves[wave].append(event["id"])
        self.orders = [o for s in self.stories for o in s.orders]
        self.dunning_runs = sum(1 for s in self.stories if s.kind.startswith("renewal"))
        self.distinct = [list(waves[w]) for w in (0, 1, 2)]
        for w in waves.values():
            rng.shuffle(w)
        dups = {w: rng.sample(waves[w], int(len(waves[w]) * duplicate_rate)) for w in waves}
        # A duplicate goes out somewhere after its first delivery, a third of them in the next
        # wave, as Stripe redelivers after a lost acknowledgement.
        self.waves = []
        carry = []
        for w in (0, 1, 2):
            now, later = (dups[w], []) if w == 2 else (dups[w][: len(dups[w]) * 2 // 3], dups[w][len(dups[w]) * 2 // 3:])
            self.waves.append(self.insert_later(rng, waves[w], now + carry))
            carry = later

    @staticmethod
    def insert_later(rng, order, duplicates):
        out = list(order)
        for event_id in duplicates:
            first = out.index(event_id) if event_id in out else -1
            out.insert(rng.randint(first + 1, len(out)), event_id)
        return out

    def covered_types(self):
        return sorted(set(self.types.values()))
