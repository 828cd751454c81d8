//! Healing from lost webhooks: reconciliation from Stripe's Events API and the first sync of
//! an existing account, against the Stripe stand-in (`billhook_testkit::stripe_api`), which
//! pages its lists as Stripe does.

mod reconcile;
mod sync;
