//! The ingest writers: a few tasks that store the deliveries of concurrent requests together.
//!
//! Each request hands its verified delivery to the queue and waits for the outcome of the
//! transaction that stored it. A writer takes the first delivery waiting and every other one
//! already queued (up to the batch limit), stores them in one transaction
//! ([`ingest::store_batch`]) and answers each. Nothing waits for a batch to fill: a lone
//! request is written at once, and batches form only while earlier ones are committing, so
//! the round trips and the commit's flush are shared by the requests that arrived meanwhile.
//! Each request is still answered only after its own row and job have committed.
//!
//! A request that has given up (its time ran out and it answered 503) is dropped from the
//! batch before it is written, so nothing is stored for it. When a batch fails for a reason
//! other than the database being unreachable, its deliveries are stored again one by one, so
//! one delivery PostgreSQL refuses cannot fail the others.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::metrics::Metrics;
use billhook_core::ingest::{self, Delivery, IngestError, Stored};

/// How the writers are set up.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Writers, each with at most one transaction in flight.
    pub writers: usize,
    /// Deliveries stored in one transaction at most.
    pub max_batch: usize,
    /// `max_attempts` of each ProcessEvent job.
    pub max_attempts: u32,
}

struct Pending {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Stored, IngestError>>,
}

/// Where requests hand in their deliveries (one per `Application`, in its `AppState`); the
/// writers stop once it is dropped and every delivery handed in has been answered.
pub struct IngestQueue {
    sender: mpsc::Sender<Pending>,
}

impl IngestQueue {
    /// Starts the writers on the current Tokio runtime; each batch's size goes to `metrics`.
    pub fn start(pool: PgPool, settings: WriterSettings, metrics: Metrics) -> Self {
        let writers = settings.writers.max(1);
        let max_batch = settings.max_batch.max(1);
        let (sender, receiver) = mpsc::channel(writers * max_batch);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers {
            tokio::spawn(write_loop(
                pool.clone(),
                Arc::clone(&receiver),
                max_batch,
                settings.max_attempts,
                metrics.clone(),
            ));
        }
        Self { sender }
    }

    /// Stores `delivery` (with whatever else is waiting) and enqueues its job; returns once the
    /// transaction that holds it has committed or failed. Dropping the future before then
    /// withdraws the delivery if no writer has taken it yet.
    pub async fn store(&self, delivery: Delivery) -> Result<Stored, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

async fn write_loop(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
    max_attempts: u32,
    metrics: Metrics,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        let received = receiver.lock().await.recv_many(&mut batch, max_batch).await;
        if received == 0 {
            return;
        }
        batch.retain(|p: &Pending| !p.reply.is_closed());
        if !batch.is_empty() {
            metrics.batch(batch.len());
            write(&pool, std::mem::take(&mut batch), max_attempts).await;
        }
    }
}

async fn write(pool: &PgPool, batch: Vec<Pending>, max_attempts: u32) {
    let (deliveries, replies): (Vec<Delivery>, Vec<_>) =
        batch.into_iter().map(|p| (p.delivery, p.reply)).unzip();
    match ingest::store_batch(pool, &deliveries, max_attempts).await {
        Ok(stored) => {
            for (reply, stored) in replies.into_iter().zip(stored) {
                let _ = reply.send(Ok(stored));
            }
        }
        Err(e) if deliveries.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(error = %e, size = deliveries.len(),
                "batch refused; storing its deliveries one by one");
            for (delivery, reply) in deliveries.iter().zip(replies) {
                if !reply.is_closed() {
                    let _ = reply.send(ingest::store(pool, delivery, max_attempts).await);
                }
            }
        }
        Err(e) if replies.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            let shared = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(IngestError::Batch(Arc::clone(&shared))));
            }
        }
    }
}
