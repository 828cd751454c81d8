//! Stripe's list endpoints over the objects a test added: which paths are lists, the
//! parameters each accepts, newest-first order, and cursor paging (`limit`, `starting_after`,
//! `ending_before`) answered as Stripe's list object. Pure functions over the items, so the
//! paging rules are tested without a server.
//!
//! A parameter the stand-in does not implement is refused as Stripe refuses an unknown one
//! ("Received unknown parameter"), so a filter is never silently ignored.

use std::ops::RangeInclusive;

use serde_json::{Value, json};

use super::query::{ParamError, Query, array_name};

/// The collections `StripeStandIn::add_object` accepts, each listed at `/v1/{collection}`.
pub const COLLECTIONS: &[&str] = &[
    "customers",
    "subscriptions",
    "invoices",
    "payment_intents",
    "charges",
    "checkout/sessions",
    "payment_methods",
    "webhook_endpoints",
];

/// Where `StripeStandIn::add_event` keeps events, listed at `/v1/events`.
pub const EVENTS: &str = "events";

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// Stripe takes at most this many names in `types[]`.
const MAX_TYPES: usize = 20;
const CREATED_KEYS: &[&str] = &[
    "created",
    "created[gt]",
    "created[gte]",
    "created[lt]",
    "created[lte]",
];
/// A subscription in one of these has ended; the default list hides it.
const ENDED: &[&str] = &["canceled", "incomplete_expired"];

/// The list endpoint a request asked for.
#[derive(Debug)]
pub struct Endpoint {
    /// The stored collection it reads, e.g. `payment_methods`.
    pub collection: &'static str,
    /// The request's path, repeated as the answer's `url`.
    url: String,
    /// Set for `/v1/customers/{id}/payment_methods`: only that customer's are listed.
    customer: Option<String>,
}

impl Endpoint {
    /// The list endpoint at `path`, if it is one.
    pub fn of(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/v1/")?;
        let listed = |collection| Self {
            collection,
            url: path.to_owned(),
            customer: None,
        };
        if rest == EVENTS {
            return Some(listed(EVENTS));
        }
        if let Some(collection) = COLLECTIONS.iter().find(|c| **c == rest) {
            return Some(listed(collection));
        }
        let customer = rest
            .strip_prefix("customers/")?
            .strip_suffix("/payment_methods")?;
        (!customer.is_empty() && !customer.contains('/')).then(|| Self {
            customer: Some(customer.to_owned()),
            ..listed("payment_methods")
        })
    }

    /// Parameters that keep the items whose field of the same name equals the value.
    fn field_filters(&self) -> &'static [&'static str] {
        match (self.collection, self.customer.is_some()) {
            ("customers", _) => &["email"],
            ("subscriptions" | "payment_intents" | "charges", _) => &["customer"],
            ("invoices" | "checkout/sessions", _) => &["customer", "status"],
            ("payment_methods", false) => &["customer", "type"],
            ("payment_methods", true) => &["type"],
            _ => &[],
        }
    }
}

/// Stripe's answer to `GET {endpoint.url}?{query}` over `items`, given in the order added.
pub fn answer(endpoint: &Endpoint, items: &[Value], query: &Query) -> Result<Value, ParamError> {
    let selection = Selection::read(endpoint, query)?;
    let limit = limit(query)?;
    let ordered = newest_first(items);
    let position = |param: &str, id: &str| {
        ordered
            .iter()
            .position(|item| item["id"] == id)
            .ok_or_else(|| ParamError::new(param, format!("No such object: '{id}'")))
    };
    let (data, has_more) = match (query.get("starting_after"), query.get("ending_before")) {
        (Some(_), Some(_)) => {
            return Err(ParamError::new(
                "ending_before",
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        (Some(id), None) => {
            let after = position("starting_after", id)? + 1;
            first(selection.keep(&ordered[after..]), limit)
        }
        (None, Some(id)) => {
            let before = position("ending_before", id)?;
            last(selection.keep(&ordered[..before]), limit)
        }
        (None, None) => first(selection.keep(&ordered), limit),
    };
    Ok(json!({ "object": "list", "url": endpoint.url, "has_more": has_more, "data": data }))
}

/// Newest first by `created`; among equal `created`, the one added later first.
fn newest_first(items: &[Value]) -> Vec<&Value> {
    let mut ordered: Vec<&Value> = items.iter().rev().collect();
    // A stable sort keeps the reversed insertion order among equal `created`.
    ordered.sort_by_key(|item| std::cmp::Reverse(created(item)));
    ordered
}

/// The `limit` nearest the start, and whether more follow.
fn first(kept: Vec<&Value>, limit: usize) -> (Vec<&Value>, bool) {
    let more = kept.len() > limit;
    (kept.into_iter().take(limit).collect(), more)
}

/// The `limit` nearest the end (an `ending_before` cursor), and whether more precede them.
fn last(mut kept: Vec<&Value>, limit: usize) -> (Vec<&Value>, bool) {
    let start = kept.len().saturating_sub(limit);
    (kept.split_off(start), start > 0)
}

fn limit(query: &Query) -> Result<usize, ParamError> {
    let Some(limit) = query.integer("limit")? else {
        return Ok(DEFAULT_LIMIT);
    };
    usize::try_from(limit)
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| {
            ParamError::new(
                "limit",
                format!("Invalid limit: must be an integer from 1 to {MAX_LIMIT}, got {limit}"),
            )
        })
}

fn created(item: &Value) -> i64 {
    item["created"].as_i64().unwrap_or(0)
}

/// Which items a list request selects, read from its parameters.
#[derive(Debug)]
struct Selection {
    /// `(field, value)`: the item's field equals the value (an expanded object by its `id`).
    fields: Vec<(&'static str, String)>,
    created: RangeInclusive<i64>,
    /// Subscriptions: `Some(false)` hides ended ones (the default), `Some(true)` keeps only
    /// those (`status=ended`).
    ended: Option<bool>,
    /// Events: `types[]`, exact names.
    types: Vec<String>,
    /// Events: `type`, one name or a prefix ending in `*`.
    type_pattern: Option<String>,
}

impl Selection {
    fn read(endpoint: &Endpoint, query: &Query) -> Result<Self, ParamError> {
        let fields = endpoint.field_filters();
        let events = endpoint.collection == EVENTS;
        let subscriptions = endpoint.collection == "subscriptions";
        if let Some(key) = query.keys().find(|key| {
            let known = matches!(*key, "limit" | "starting_after" | "ending_before")
                || CREATED_KEYS.contains(key)
                || array_name(key) == Some("expand")
                || fields.contains(key)
                || (events && matches!(*key, "type" | "delivery_success"))
                || (events && array_name(key) == Some("types"))
                || (subscriptions && *key == "status");
            !known
        }) {
            return Err(ParamError::new(
                key,
                format!("Received unknown parameter: {key}"),
            ));
        }

        let mut selection = Self {
            fields: fields
                .iter()
                .filter_map(|field| query.get(field).map(|value| (*field, value.to_owned())))
                .collect(),
            created: created_range(query)?,
            ended: None,
            types: query
                .array("types")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            type_pattern: query.get("type").map(str::to_owned),
        };
        if let Some(customer) = &endpoint.customer {
            selection.fields.push(("customer", customer.clone()));
        }
        if subscriptions {
            match query.get("status") {
                None => selection.ended = Some(false),
                Some("all") => {}
                Some("ended") => selection.ended = Some(true),
                Some(status) => selection.fields.push(("status", status.to_owned())),
            }
        }
        if selection.types.len() > MAX_TYPES {
            return Err(ParamError::new(
                "types",
                format!("types may name at most {MAX_TYPES} event types"),
            ));
        }
        if !selection.types.is_empty() && selection.type_pattern.is_some() {
            return Err(ParamError::new(
                "type",
                "You may only specify one of these parameters: type, types.",
            ));
        }
        Ok(selection)
    }

    /// The items selected, in the order given.
    fn keep<'a>(&self, items: &[&'a Value]) -> Vec<&'a Value> {
        items
            .iter()
            .copied()
            .filter(|item| self.keeps(item))
            .collect()
    }

    fn keeps(&self, item: &Value) -> bool {
        let status = item["status"].as_str().unwrap_or_default();
        let kind = item["type"].as_str().unwrap_or_default();
        self.created.contains(&created(item))
            && self.fields.iter().all(|(field, value)| {
                let field = &item[*field];
                field.as_str().or_else(|| field["id"].as_str()) == Some(value.as_str())
            })
            && self
                .ended
                .is_none_or(|ended| ENDED.contains(&status) == ended)
            && (self.types.is_empty() || self.types.iter().any(|t| t == kind))
            && self
                .type_pattern
                .as_deref()
                .is_none_or(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => kind.starts_with(prefix),
                    None => kind == pattern,
                })
    }
}

/// `created`, `created[gt]`, `created[gte]`, `created[lt]`, `created[lte]` as one range.
fn created_range(query: &Query) -> Result<RangeInclusive<i64>, ParamError> {
    let (mut low, mut high) = (i64::MIN, i64::MAX);
    if let Some(at) = query.integer("created")? {
        (low, high) = (at, at);
    }
    if let Some(gt) = query.integer("created[gt]")? {
        low = low.max(gt.saturating_add(1));
    }
    if let Some(gte) = query.integer("created[gte]")? {
        low = low.max(gte);
    }
    if let Some(lt) = query.integer("created[lt]")? {
        high = high.min(lt.saturating_sub(1));
    }
    if let Some(lte) = query.integer("created[lte]")? {
        high = high.min(lte);
    }
    Ok(low..=high)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn event(n: usize, created: i64, kind: &str) -> Value {
        json!({ "id": format!("evt_{n}"), "object": "event", "created": created, "type": kind })
    }

    /// Events `evt_0` … `evt_{count-1}`, each a second newer than the one before.
    fn events(count: usize) -> Vec<Value> {
        (0..count)
            .map(|n| event(n, 1_000 + n as i64, "invoice.paid"))
            .collect()
    }

    fn list(path: &str, items: &[Value], query: &str) -> Result<Value, ParamError> {
        let endpoint = Endpoint::of(path).expect("a list endpoint");
        answer(&endpoint, items, &Query::parse(query))
    }

    fn ids(list: &Value) -> Vec<&str> {
        list["data"]
            .as_array()
            .expect("data is an array")
            .iter()
            .map(|item| item["id"].as_str().expect("a string id"))
            .collect()
    }

    fn refused(path: &str, items: &[Value], query: &str) -> String {
        list(path, items, query).expect_err("refused").param
    }

    #[test]
    fn paging_through_250_events_by_100_takes_three_pages_and_sees_each_once() {
        let items = events(250);
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut query = "limit=100".to_owned();
        loop {
            let page = list("/v1/events", &items, &query).expect("a page");
            let page_ids: Vec<String> = ids(&page).into_iter().map(str::to_owned).collect();
            pages.push((page_ids.len(), page["has_more"] == true));
            let Some(last) = page_ids.last() else { break };
            query = format!("limit=100&starting_after={last}");
            seen.extend(page_ids);
            if page["has_more"] == false {
                break;
            }
        }
        assert_eq!(pages, [(100, true), (100, true), (50, false)]);
        assert_eq!(seen.len(), 250);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
        assert_eq!(seen.first().map(String::as_str), Some("evt_249"));
        assert_eq!(seen.last().map(String::as_str), Some("evt_0"));
    }

    #[test]
    fn a_list_is_stripes_list_object_with_ten_items_by_default() {
        let page = list("/v1/events", &events(12), "").expect("a page");
        assert_eq!(page["object"], "list");
        assert_eq!(page["url"], "/v1/events");
        assert_eq!(page["has_more"], true);
        assert_eq!(ids(&page).len(), 10);
    }

    #[test]
    fn starting_after_an_item_in_the_middle_lists_the_older_ones() {
        let page = list("/v1/events", &events(10), "limit=3&starting_after=evt_5").expect("page");
        assert_eq!(ids(&page), ["evt_4", "evt_3", "evt_2"]);
        assert_eq!(page["has_more"], true);
        let page = list("/v1/events", &events(10), "starting_after=evt_2").expect("page");
        assert_eq!(ids(&page), ["evt_1", "evt_0"]);
        assert_eq!(page["has_more"], false);
    }

    #[test]
    fn ending_before_lists_the_newer_ones_nearest_the_cursor_newest_first() {
        let page = list("/v1/events", &events(10), "limit=3&ending_before=evt_2").expect("page");
        assert_eq!(ids(&page), ["evt_5", "evt_4", "evt_3"]);
        assert_eq!(page["has_more"], true);
        let page = list("/v1/events", &events(10), "limit=3&ending_before=evt_7").expect("page");
        assert_eq!(ids(&page), ["evt_9", "evt_8"]);
        assert_eq!(page["has_more"], false);
    }

    #[test]
    fn created_bounds_select_a_window() {
        let items = events(10);
        let page = list("/v1/events", &items, "created[gte]=1003&created[lt]=1006").expect("page");
        assert_eq!(ids(&page), ["evt_5", "evt_4", "evt_3"]);
        let page = list("/v1/events", &items, "created[gt]=1003&created[lte]=1005").expect("page");
        assert_eq!(ids(&page), ["evt_5", "evt_4"]);
        let page = list("/v1/events", &items, "created=1007").expect("page");
        assert_eq!(ids(&page), ["evt_7"]);
        assert_eq!(
            refused("/v1/events", &items, "created[gte]=yesterday"),
            "created[gte]"
        );
    }

    #[test]
    fn types_select_events_by_name_sent_repeated_or_indexed() {
        let items = vec![
            event(0, 1, "invoice.paid"),
            event(1, 2, "customer.created"),
            event(2, 3, "invoice.payment_failed"),
            event(3, 4, "charge.succeeded"),
        ];
        let repeated = "types[]=invoice.paid&types[]=charge.succeeded";
        let page = list("/v1/events", &items, repeated).expect("page");
        assert_eq!(ids(&page), ["evt_3", "evt_0"]);
        let indexed = "types%5B0%5D=invoice.paid&types%5B1%5D=customer.created";
        let page = list("/v1/events", &items, indexed).expect("page");
        assert_eq!(ids(&page), ["evt_1", "evt_0"]);
    }

    #[test]
    fn a_type_ending_in_a_star_selects_every_event_of_that_group() {
        let items = vec![
            event(0, 1, "invoice.paid"),
            event(1, 2, "invoiceitem.created"),
            event(2, 3, "invoice.payment_failed"),
        ];
        let page = list("/v1/events", &items, "type=invoice.*").expect("page");
        assert_eq!(ids(&page), ["evt_2", "evt_0"]);
        let page = list("/v1/events", &items, "type=invoice.paid").expect("page");
        assert_eq!(ids(&page), ["evt_0"]);
    }

    #[test]
    fn more_than_twenty_types_or_types_with_type_are_refused() {
        let many: Vec<String> = (0..21).map(|n| format!("types[]=t.{n}")).collect();
        assert_eq!(refused("/v1/events", &[], &many.join("&")), "types");
        assert_eq!(refused("/v1/events", &[], "types[]=a.b&type=a.*"), "type");
    }

    #[test]
    fn a_limit_outside_one_to_a_hundred_is_refused() {
        for limit in ["0", "101", "-1", "ten"] {
            assert_eq!(
                refused("/v1/events", &events(3), &format!("limit={limit}")),
                "limit"
            );
        }
        assert!(list("/v1/events", &events(3), "limit=100").is_ok());
        assert!(list("/v1/events", &events(3), "limit=1").is_ok());
    }

    #[test]
    fn an_unknown_cursor_both_cursors_or_an_unknown_parameter_are_refused() {
        let items = events(3);
        let error = list("/v1/events", &items, "starting_after=evt_nope").expect_err("refused");
        assert_eq!(error.param, "starting_after");
        assert!(error.message.contains("evt_nope"));
        assert_eq!(
            refused("/v1/events", &items, "ending_before=evt_9"),
            "ending_before"
        );
        let both = "starting_after=evt_1&ending_before=evt_0";
        assert_eq!(refused("/v1/events", &items, both), "ending_before");
        assert_eq!(refused("/v1/customers", &[], "colour=red"), "colour");
        assert!(
            list(
                "/v1/events",
                &items,
                "expand[]=data.object&delivery_success=false"
            )
            .is_ok()
        );
    }

    #[test]
    fn subscriptions_hide_ended_ones_unless_asked_for() {
        let subscription = |id: &str, created: i64, status: &str| json!({ "id": id, "created": created, "status": status, "customer": "cus_1" });
        let items = vec![
            subscription("sub_active", 1, "active"),
            subscription("sub_canceled", 2, "canceled"),
            subscription("sub_expired", 3, "incomplete_expired"),
            subscription("sub_past_due", 4, "past_due"),
        ];
        let path = "/v1/subscriptions";
        let page = list(path, &items, "").expect("page");
        assert_eq!(ids(&page), ["sub_past_due", "sub_active"]);
        let page = list(path, &items, "status=all").expect("page");
        assert_eq!(ids(&page).len(), 4);
        let page = list(path, &items, "status=canceled").expect("page");
        assert_eq!(ids(&page), ["sub_canceled"]);
        let page = list(path, &items, "status=ended").expect("page");
        assert_eq!(ids(&page), ["sub_expired", "sub_canceled"]);
        let page = list(path, &items, "status=all&customer=cus_2").expect("page");
        assert!(ids(&page).is_empty());
    }

    #[test]
    fn items_created_in_the_same_second_list_the_later_added_first() {
        let items = vec![
            event(0, 5, "a.b"),
            event(1, 5, "a.b"),
            event(2, 9, "a.b"),
            event(3, 5, "a.b"),
        ];
        let page = list("/v1/events", &items, "").expect("page");
        assert_eq!(ids(&page), ["evt_2", "evt_3", "evt_1", "evt_0"]);
        let page = list("/v1/events", &items, "starting_after=evt_3&limit=1").expect("page");
        assert_eq!(ids(&page), ["evt_1"]);
        assert_eq!(page["has_more"], true);
    }

    #[test]
    fn a_customers_payment_methods_are_listed_under_the_customer() {
        let method = |id: &str, customer: Value, kind: &str| json!({ "id": id, "created": 1, "customer": customer, "type": kind });
        let items = vec![
            method("pm_1", json!("cus_1"), "card"),
            method("pm_2", json!({ "id": "cus_1" }), "sepa_debit"),
            method("pm_3", json!("cus_2"), "card"),
        ];
        let page = list("/v1/customers/cus_1/payment_methods", &items, "").expect("page");
        assert_eq!(page["url"], "/v1/customers/cus_1/payment_methods");
        assert_eq!(ids(&page), ["pm_2", "pm_1"]);
        let page = list("/v1/payment_methods", &items, "type=card").expect("page");
        assert_eq!(ids(&page), ["pm_3", "pm_1"]);
        let page = list("/v1/customers/cus_2/payment_methods", &items, "type=card").expect("p");
        assert_eq!(ids(&page), ["pm_3"]);
    }

    #[test]
    fn only_list_paths_are_list_endpoints() {
        assert!(Endpoint::of("/v1/checkout/sessions").is_some());
        assert!(Endpoint::of("/v1/webhook_endpoints").is_some());
        assert!(Endpoint::of("/v1/customers/cus_1").is_none());
        assert!(Endpoint::of("/v1/customers//payment_methods").is_none());
        assert!(Endpoint::of("/v1/prices").is_none());
    }
}
