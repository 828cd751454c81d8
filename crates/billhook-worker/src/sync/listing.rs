//! A run's types, one after another, each listed page by page from its cursor: the list
//! endpoints through [`Pager`], payment methods customer by customer.

use serde_json::Value;
use sqlx::PgPool;

use super::SyncError;
use super::page::{self, Page};
use super::progress::{Counts, Progress, TypeLine};
use super::run::{self, OpenRun, TypeProgress};
use super::summary::TypeSummary;
use super::types::{ObjectType, customer_payment_methods_path};
use crate::stripe::StripeApi;
use crate::stripe::list::{ListError, Pager};

/// Customers read from the mirror at a time, for their payment methods.
const CUSTOMER_BATCH: i64 = 100;

/// One run being carried out.
pub struct Sync<'a> {
    pub pool: &'a PgPool,
    pub api: &'a StripeApi,
    pub run: &'a OpenRun,
    pub progress: &'a Progress,
}

impl Sync<'_> {
    /// Every type of the run in order; a type done in an earlier process is skipped.
    pub async fn all(&self) -> Result<Vec<TypeSummary>, SyncError> {
        let mut summaries = Vec::with_capacity(self.run.progress.len());
        for (object_type, progress) in &self.run.progress {
            let before = Counts {
                fetched: progress.fetched,
                written: progress.written,
                kept: progress.kept,
            };
            let mut line = self.progress.start(*object_type, before);
            if progress.done {
                summaries.push(line.finish(true));
                continue;
            }
            match object_type.list_path() {
                Some(path) => self.list(*object_type, path, progress, &mut line).await?,
                None => self.payment_methods(progress, &mut line).await?,
            }
            let mut conn = self.pool.acquire().await.map_err(|e| self.write_error(e))?;
            run::type_done(&mut conn, self.run.id, *object_type)
                .await
                .map_err(|e| self.write_error(e))?;
            summaries.push(line.finish(false));
        }
        Ok(summaries)
    }

    /// A type with a list endpoint, from the progress row's cursor to the list's end.
    async fn list(
        &self,
        object_type: ObjectType,
        path: &str,
        progress: &TypeProgress,
        line: &mut TypeLine,
    ) -> Result<(), SyncError> {
        let mut query = object_type.query();
        if let Some(gte) = self.run.created_gte {
            query.push(("created[gte]", gte.to_string()));
        }
        let mut pager = Pager::new(self.api, path, query.clone(), progress.cursor.clone());
        loop {
            // Taken before the request is sent: whatever the page shows happened before it.
            let fetched_at = chrono::Utc::now().timestamp();
            let page = match pager.next().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(()),
                Err(error) => match object_type.optional_expansion() {
                    Some(expansion)
                        if refuses_expansion(&error)
                            && query.iter().any(|(_, v)| v == expansion) =>
                    {
                        self.progress.note(&format!(
                            "Stripe refused expand[]={expansion} for {} (an API version before \
                             2025-03-31, where the object names what it expands); listing without it",
                            object_type.name()
                        ));
                        query.retain(|(_, v)| v != expansion);
                        let cursor = pager.cursor().map(str::to_owned);
                        pager = Pager::new(self.api, path, query.clone(), cursor);
                        continue;
                    }
                    _ => return Err(self.stripe_error(error)),
                },
            };
            let objects = parse(&page.data).map_err(|e| self.stripe_error(e.at(path)))?;
            let Some(cursor) = pager.cursor() else {
                return Ok(());
            };
            let counts = self
                .write(object_type, &objects, fetched_at, cursor)
                .await?;
            line.page(counts);
        }
    }

    /// Payment methods, listed per customer of the mirror in id order. The cursor is the last
    /// customer whose payment methods are all written, or `customer:pm` inside one. The
    /// per-customer list takes no `created` filter, so `--created-since` is applied here.
    async fn payment_methods(
        &self,
        progress: &TypeProgress,
        line: &mut TypeLine,
    ) -> Result<(), SyncError> {
        let (mut after, mut inside) = split_cursor(progress.cursor.as_deref());
        loop {
            let customers: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM customers
                  WHERE NOT deleted AND ($1::text IS NULL OR id > $1 OR id = $2)
                  ORDER BY id LIMIT $3",
            )
            .bind(after.as_deref())
            .bind(inside.as_ref().map(|(customer, _)| customer.as_str()))
            .bind(CUSTOMER_BATCH)
            .fetch_all(self.pool)
            .await
            .map_err(|e| self.write_error(e))?;
            let Some(last) = customers.last().cloned() else {
                return Ok(());
            };
            for customer in customers {
                let start = inside
                    .take()
                    .filter(|(c, _)| *c == customer)
                    .map(|(_, pm)| pm);
                self.customer_payment_methods(&customer, start, line)
                    .await?;
            }
            after = Some(last);
        }
    }

    /// One customer's payment methods after `start`; the cursor ends on the customer.
    async fn customer_payment_methods(
        &self,
        customer: &str,
        start: Option<String>,
        line: &mut TypeLine,
    ) -> Result<(), SyncError> {
        let object_type = ObjectType::PaymentMethods;
        let path = customer_payment_methods_path(customer);
        let mut pager = Pager::new(self.api, path.as_str(), Vec::new(), start);
        let mut wrote_last = false;
        loop {
            let fetched_at = chrono::Utc::now().timestamp();
            let page = match pager.next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                // A customer the mirror has but Stripe does not (deleted there without an
                // event yet, or of the other mode than the key): nothing to list.
                Err(ListError::Refused {
                    status: 404,
                    message,
                    ..
                }) => {
                    self.progress.note(&format!(
                        "payment methods of {customer}: Stripe does not know the customer ({message}); skipped"
                    ));
                    break;
                }
                Err(error) => return Err(self.stripe_error(error)),
            };
            let objects = parse(&page.data).map_err(|e| self.stripe_error(e.at(&path)))?;
            let objects: Vec<Value> = objects
                .into_iter()
                .filter(|o| self.run.created_gte.is_none_or(|gte| created(o) >= gte))
                .collect();
            let cursor = match (page.has_more, pager.cursor()) {
                (true, Some(pm)) => format!("{customer}:{pm}"),
                _ => customer.to_owned(),
            };
            wrote_last = !page.has_more;
            let counts = self
                .write(object_type, &objects, fetched_at, &cursor)
                .await?;
            line.page(counts);
        }
        if !wrote_last {
            let mut conn = self.pool.acquire().await.map_err(|e| self.write_error(e))?;
            run::move_cursor(&mut conn, self.run.id, object_type, customer)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    async fn write(
        &self,
        object_type: ObjectType,
        objects: &[Value],
        fetched_at: i64,
        cursor: &str,
    ) -> Result<Counts, SyncError> {
        let source = self.run.source();
        let page = Page {
            run: self.run.id,
            source: &source,
            object_type,
            objects,
            fetched_at,
            cursor,
        };
        page::write(self.pool, &page)
            .await
            .map_err(|error| SyncError::Write {
                run: self.run.id,
                error,
            })
    }

    fn stripe_error(&self, error: ListError) -> SyncError {
        SyncError::Stripe {
            run: self.run.id,
            error,
        }
    }

    fn write_error(&self, error: sqlx::Error) -> SyncError {
        SyncError::Write {
            run: self.run.id,
            error: error.into(),
        }
    }
}

/// Stripe's answer when a field to expand does not exist in the account's API version.
fn refuses_expansion(error: &ListError) -> bool {
    matches!(error, ListError::Refused { status: 400, message, .. }
        if message.to_ascii_lowercase().contains("expand"))
}

/// A list item that is not a JSON object with an id.
struct Unreadable(String);

impl Unreadable {
    fn at(self, path: &str) -> ListError {
        ListError::Malformed {
            path: path.to_owned(),
            reason: self.0,
        }
    }
}

fn parse(items: &[Box<serde_json::value::RawValue>]) -> Result<Vec<Value>, Unreadable> {
    items
        .iter()
        .map(|raw| serde_json::from_str::<Value>(raw.get()).map_err(|e| Unreadable(e.to_string())))
        .collect()
}

fn created(object: &Value) -> i64 {
    object.get("created").and_then(Value::as_i64).unwrap_or(0)
}

/// A payment-method cursor as (the customers to list come after this one, or are it when it is
/// the one inside which the listing stopped; inside it: after which payment method).
/// `customer` → (customer, none); `customer:pm` → (customer, (customer, pm)).
fn split_cursor(cursor: Option<&str>) -> (Option<String>, Option<(String, String)>) {
    match cursor.map(|c| c.split_once(':')) {
        None => (None, None),
        Some(Some((customer, pm))) => (
            Some(customer.to_owned()),
            Some((customer.to_owned(), pm.to_owned())),
        ),
        Some(None) => (cursor.map(str::to_owned), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_method_cursor_says_which_customer_and_where_inside_it() {
        assert_eq!(split_cursor(None), (None, None));
        assert_eq!(
            split_cursor(Some("cus_1")),
            (Some("cus_1".to_owned()), None)
        );
        assert_eq!(
            split_cursor(Some("cus_1:pm_9")),
            (
                Some("cus_1".to_owned()),
                Some(("cus_1".to_owned(), "pm_9".to_owned()))
            )
        );
    }

    #[test]
    fn only_a_400_about_expanding_drops_the_expansion() {
        let refused = |status, message: &str| ListError::Refused {
            path: "/v1/invoices".to_owned(),
            status,
            message: message.to_owned(),
        };
        assert!(refuses_expansion(&refused(
            400,
            "This property cannot be expanded (payments)."
        )));
        assert!(!refuses_expansion(&refused(400, "No such invoice: 'in_1'")));
        assert!(!refuses_expansion(&refused(404, "cannot be expanded")));
    }
}
