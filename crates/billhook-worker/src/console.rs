//! The operator console (`billhook-console`) wired to this worker: its actions run the code
//! the command line runs (`queue::dead_letter::requeue`, `billing::fulfilment::mark`,
//! `alerts::incident::acknowledge`), and
//! `billhook-worker console` serves it alone.

use std::future::Future;
use std::sync::Arc;

use billhook_console::{
    AckError, Actions, Console, ConsoleSettings, MarkError, MarkOrder, MarkedOrder, RequeueRequest,
    Requeued,
};
use futures_util::future::BoxFuture;
use sqlx::PgPool;

use crate::queue::dead_letter::{self, Selection};

/// The console's actions on this database's job queue.
pub struct QueueActions {
    pub pool: PgPool,
}

impl Actions for QueueActions {
    fn requeue<'a>(
        &'a self,
        request: &'a RequeueRequest,
        by: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Requeued>> {
        Box::pin(async move {
            let selection = Selection {
                job_ids: request.job_ids.clone(),
                event_ids: request.event_ids.clone(),
                event_type: request.kind.clone(),
                since: request.since,
                include_requeued: false,
            };
            let done =
                dead_letter::requeue(&self.pool, &selection, by, &request.reason, request.dry_run)
                    .await?;
            Ok(Requeued {
                count: done.len(),
                job_ids: done.into_iter().map(|d| d.job_id).collect(),
                dry_run: request.dry_run,
            })
        })
    }

    fn mark_order<'a>(
        &'a self,
        key: &'a str,
        request: &'a MarkOrder,
        by: &'a str,
    ) -> BoxFuture<'a, Result<MarkedOrder, MarkError>> {
        Box::pin(crate::billing::fulfilment::mark(
            &self.pool, key, request, by,
        ))
    }

    fn acknowledge_alert<'a>(
        &'a self,
        id: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<bool, AckError>> {
        use crate::alerts::incident::{self, AckError as Refused};
        Box::pin(async move {
            incident::acknowledge(&self.pool, id, by)
                .await
                .map_err(|e| match e {
                    Refused::NotFound(_) => AckError::NotFound,
                    Refused::Resolved(_) => AckError::Resolved,
                    Refused::Database(e) => AckError::Failed(e.into()),
                })
        })
    }
}

/// The console over `pool`, bound to its address.
pub fn build(pool: &PgPool, settings: &ConsoleSettings) -> anyhow::Result<Console> {
    Console::build(
        pool.clone(),
        settings,
        Arc::new(QueueActions { pool: pool.clone() }),
    )
}

/// `billhook-worker console`: the console alone, until `shutdown`.
pub async fn serve(
    pool: PgPool,
    settings: &ConsoleSettings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    billhook_core::db::check_migrated(&pool).await?;
    let console = build(&pool, settings)?;
    tracing::info!(listen = %settings.listen, "billhook-worker console running");
    console.run(shutdown).await
}
