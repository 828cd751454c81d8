//! A TCP proxy that a test can cut, as when PostgreSQL restarts or fails over: open connections
//! are dropped, and new ones are refused (nothing listens) or, like a server still starting up
//! or a balancer with no backend, accepted and dropped at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct CuttableProxy {
    pub address: SocketAddr,
    target: SocketAddr,
    cut: watch::Sender<u64>,
    accepting: Mutex<Option<JoinHandle<()>>>,
    dropping: Arc<AtomicBool>,
}

impl CuttableProxy {
    /// Forwards 127.0.0.1:(a free port) to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("address");
        let (cut, _) = watch::channel(0_u64);
        let dropping = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(accept(listener, target, cut.clone(), dropping.clone()));
        Self {
            address,
            target,
            cut,
            accepting: Mutex::new(Some(task)),
            dropping,
        }
    }

    /// Drops every open connection, and every new one as soon as it is accepted, until
    /// [`resume`](Self::resume).
    pub fn drop_connections(&self) {
        self.dropping.store(true, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Forwards connections again after [`drop_connections`](Self::drop_connections).
    pub fn resume(&self) {
        self.dropping.store(false, Ordering::SeqCst);
    }

    /// Drops every open connection and stops listening until [`restore`](Self::restore).
    pub fn cut(&self) {
        if let Some(task) = self
            .accepting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                // The aborted accept task may not have released the port yet.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let task = tokio::spawn(accept(
            listener,
            self.target,
            self.cut.clone(),
            self.dropping.clone(),
        ));
        *self.accepting.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    cut: watch::Sender<u64>,
    dropping: Arc<AtomicBool>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        if dropping.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cut.subscribe();
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
