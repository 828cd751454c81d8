//! The trigger's stories, as `stripe trigger` builds the objects an event needs: what Stripe
//! sends about one customer's purchase, refund, signup, renewal or trial, with ids of their own
//! (a [`Cast`] around a suffix unique to the run) and dates around now. A story's events come
//! in chapters; between two, the trigger waits for the worker (a dunning run taking its steps).

use serde_json::Value;

use crate::fixtures::ApiShape;
use crate::objects::{Builder, Cast, DAY, tidy};

/// What a one-time purchase costs, in cents. A subscription costs 2000 a month.
pub const PURCHASE_AMOUNT: i64 = 5000;
pub const CURRENCY: &str = "usd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    OneTimePurchase,
    Refund,
    SubscriptionSignup,
    RenewalFailsThenRecovers,
    RenewalFailsToCancellation,
    TrialEnding,
}

/// Some events, sent in order, and what happens before the next chapter.
#[derive(Debug, Clone)]
pub struct Chapter {
    pub events: Vec<Value>,
    pub then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The next chapter follows once these events are applied.
    Continue,
    /// The renewal's dunning run takes its first step (the payment-failed email) first.
    FirstDunningStep,
    /// The renewal's dunning run goes through its steps to the cancellation first.
    DunningRunEnds,
}

impl Story {
    pub const ALL: [Story; 6] = [
        Self::OneTimePurchase,
        Self::Refund,
        Self::SubscriptionSignup,
        Self::RenewalFailsThenRecovers,
        Self::RenewalFailsToCancellation,
        Self::TrialEnding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::OneTimePurchase => "one-time-purchase",
            Self::Refund => "refund",
            Self::SubscriptionSignup => "subscription-signup",
            Self::RenewalFailsThenRecovers => "renewal-fails-then-recovers",
            Self::RenewalFailsToCancellation => "renewal-fails-to-cancellation",
            Self::TrialEnding => "trial-ending",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line: what happens, and what Billhook should do about it.
    pub fn summary(self) -> &'static str {
        match self {
            Self::OneTimePurchase => {
                "the app creates an order, the customer pays 50.00 USD through Checkout: order paid, confirmation and receipt emails"
            }
            Self::Refund => {
                "a one-time purchase, then its full refund: order refunded, ledger debit, refund email"
            }
            Self::SubscriptionSignup => {
                "a subscription bought through Checkout: subscription active, first invoice paid, receipt"
            }
            Self::RenewalFailsThenRecovers => {
                "a month after signup the renewal payment fails (dunning opens, payment-failed email), then a retry pays it: run recovered, receipt"
            }
            Self::RenewalFailsToCancellation => {
                "the renewal payment fails for good: dunning's emails, then its cancellation step (seconds apart with a dev BILLHOOK_DUNNING_SCHEDULE), subscription canceled"
            }
            Self::TrialEnding => {
                "a 14-day trial with 3 days left and no card: trial_will_end, trial-ending email"
            }
        }
    }

    /// Whether the application creates the order (pending) before the customer pays, as it
    /// would before sending them to Checkout: by the cast's reference and session.
    pub fn app_creates_order(self) -> bool {
        matches!(self, Self::OneTimePurchase | Self::Refund)
    }

    /// The story's events for `cast`, told so that its present moment is `now` (Unix seconds):
    /// a purchase happens now, a renewal a month after a signup, a trial's end three days
    /// after now. Events are one second apart; a chapter that follows a wait is dated just
    /// after `now`.
    pub fn chapters(self, shape: ApiShape, cast: &Cast, now: i64) -> Vec<Chapter> {
        let chapter = |events: Vec<Value>, then| Chapter {
            events: events.into_iter().map(|e| tidy(e, cast)).collect(),
            then,
        };
        match self {
            Self::OneTimePurchase | Self::Refund => {
                // The customer opened Checkout a hundred seconds ago; the refund's own `created`
                // is then now.
                let b = Builder {
                    shape,
                    cast,
                    t0: now - 100,
                };
                let mut events = vec![
                    b.customer("customer.created"),
                    b.session("checkout.session.completed", "payment", PURCHASE_AMOUNT),
                    b.payment_intent("payment_intent.succeeded", PURCHASE_AMOUNT),
                ];
                if self == Self::Refund {
                    events.push(
                        b.charge_refunded(PURCHASE_AMOUNT, &[(&cast.refund, PURCHASE_AMOUNT)]),
                    );
                }
                vec![chapter(dated(events, now), Then::Continue)]
            }
            Self::SubscriptionSignup => {
                let b = Builder {
                    shape,
                    cast,
                    t0: now - 60,
                };
                let mut events = dated(
                    vec![
                        b.customer("customer.created"),
                        b.payment_method("payment_method.attached"),
                        b.subscription("customer.subscription.created", "active", 0),
                        b.invoice("invoice.paid", &cast.first_invoice, "paid", 1, 0),
                        b.session("checkout.session.completed", "subscription", 2000),
                    ],
                    now,
                );
                settle_invoice(&mut events[3]);
                vec![chapter(events, Then::Continue)]
            }
            Self::RenewalFailsThenRecovers | Self::RenewalFailsToCancellation => {
                // Signed up a month and an hour ago: the renewal period began an hour ago and
                // its invoice, finalized an hour into the period, fails now.
                let t0 = now - 30 * DAY - 3600;
                let b = Builder { shape, cast, t0 };
                let mut signup = dated(
                    vec![
                        b.customer("customer.created"),
                        b.subscription("customer.subscription.created", "active", 0),
                        b.invoice("invoice.paid", &cast.first_invoice, "paid", 1, 0),
                    ],
                    t0 + 2,
                );
                settle_invoice(&mut signup[2]);
                signup.extend(dated(
                    vec![
                        b.invoice(
                            "invoice.payment_failed",
                            &cast.renewal_invoice,
                            "open",
                            1,
                            30,
                        ),
                        b.subscription("customer.subscription.updated", "past_due", 30),
                    ],
                    now,
                ));
                if self == Self::RenewalFailsThenRecovers {
                    let mut recovery = dated(
                        vec![
                            b.invoice("invoice.paid", &cast.renewal_invoice, "paid", 2, 30),
                            b.subscription("customer.subscription.updated", "active", 30),
                        ],
                        now + 2,
                    );
                    settle_invoice(&mut recovery[0]);
                    vec![
                        chapter(signup, Then::FirstDunningStep),
                        chapter(recovery, Then::Continue),
                    ]
                } else {
                    let mut deleted =
                        b.subscription("customer.subscription.deleted", "canceled", 30);
                    deleted["created"] = (now + 1).into();
                    ended(&mut deleted, now + 1);
                    vec![
                        chapter(signup, Then::DunningRunEnds),
                        chapter(vec![deleted], Then::Continue),
                    ]
                }
            }
            Self::TrialEnding => {
                // Stripe says a trial is ending three days before it does: this one began
                // eleven days ago and lasts fourteen.
                let t0 = now - 11 * DAY;
                let b = Builder { shape, cast, t0 };
                let mut created = b.subscription("customer.subscription.created", "trialing", 0);
                let mut ending =
                    b.subscription("customer.subscription.trial_will_end", "trialing", 0);
                for subscription in [&mut created, &mut ending] {
                    period_is_the_trial(subscription);
                }
                let mut events = dated(vec![b.customer("customer.created"), created], t0 + 1);
                events.extend(dated(vec![ending], now));
                vec![chapter(events, Then::Continue)]
            }
        }
    }
}

/// `events`, one second apart, the last created at `last`.
fn dated(mut events: Vec<Value>, last: i64) -> Vec<Value> {
    let n = events.len() as i64;
    for (i, event) in events.iter_mut().enumerate() {
        event["created"] = (last - (n - 1 - i as i64)).into();
    }
    events
}

/// A paid invoice, finalized and paid when its event says (the builder pays renewals days
/// later, as Stripe's retries would).
pub(crate) fn settle_invoice(event: &mut Value) {
    let at = event["created"].clone();
    let transitions = &mut event["data"]["object"]["status_transitions"];
    transitions["finalized_at"] = at.clone();
    transitions["paid_at"] = at;
}

/// A trialing subscription's billing period, which Stripe makes the trial's.
pub(crate) fn period_is_the_trial(event: &mut Value) {
    let object = &mut event["data"]["object"];
    let trial_end = object["trial_end"].clone();
    if object.get("current_period_end").is_some() {
        object["current_period_end"] = trial_end.clone();
    }
    if let Some(items) = object["items"]["data"].as_array_mut() {
        for item in items
            .iter_mut()
            .filter(|i| i.get("current_period_end").is_some())
        {
            item["current_period_end"] = trial_end.clone();
        }
    }
}

/// A canceled subscription, canceled and ended at `at`.
pub(crate) fn ended(event: &mut Value, at: i64) {
    let object = &mut event["data"]["object"];
    object["canceled_at"] = at.into();
    object["ended_at"] = at.into();
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_storys_events_are_in_order_ids_of_its_cast_and_end_now() {
        let cast = Cast::with_suffix("k3pz9qaw");
        for story in Story::ALL {
            for shape in ApiShape::ALL {
                let chapters = story.chapters(shape, &cast, NOW);
                let events: Vec<&Value> = chapters.iter().flat_map(|c| &c.events).collect();
                let created: Vec<i64> = events
                    .iter()
                    .map(|e| e["created"].as_i64().unwrap_or_default())
                    .collect();
                assert!(
                    created.windows(2).all(|w| w[0] < w[1]),
                    "{story:?}: {created:?}"
                );
                let first_chapter_end = chapters[0].events.last().map(|e| &e["created"]);
                assert_eq!(first_chapter_end, Some(&Value::from(NOW)), "{story:?}");
                for event in events {
                    let object = &event["data"]["object"];
                    assert!(
                        object["id"]
                            .as_str()
                            .is_some_and(|id| id.contains("k3pz9qaw")),
                        "{story:?}: {}",
                        object["id"]
                    );
                    if let Some(customer) = object["customer"].as_str() {
                        assert_eq!(customer, cast.customer, "{story:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn each_run_gets_a_suffix_of_its_own_and_stories_are_found_by_name() {
        let (a, b) = (Cast::fresh(), Cast::fresh());
        assert_ne!(a.customer, b.customer);
        let suffix = a.customer.strip_prefix("cus_").unwrap_or_default();
        assert_eq!(suffix.len(), 8, "{}", a.customer);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{suffix}"
        );
        assert_eq!(a.email, format!("jenny.{suffix}@example.com"));
        for story in Story::ALL {
            assert_eq!(Story::from_name(story.name()), Some(story));
        }
        assert_eq!(Story::from_name("refunds"), None);
    }
}
