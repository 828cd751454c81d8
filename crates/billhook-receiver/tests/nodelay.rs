//! The pool both binaries use sets TCP_NODELAY on its PostgreSQL sockets. sqlx 0.9.0 leaves
//! Nagle's algorithm on, and over TLS every message larger than one record then waits up to
//! 40 ms for the server's delayed acknowledgement (see `billhook_core::db::nodelay`).

use std::net::SocketAddr;

use billhook_core::db::nodelay;
use billhook_testkit::{TestDatabase, receiver};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

/// This side's port of the connection, as the server sees it (loopback: no translation).
async fn local_port(conn: &mut PgConnection) -> u16 {
    let port: Option<i32> = sqlx::query_scalar("SELECT inet_client_port()")
        .fetch_one(conn)
        .await
        .expect("client port");
    let port = port.expect("the tests connect over TCP");
    u16::try_from(port).expect("a port")
}

/// Whether the socket of the pool's connection has TCP_NODELAY set.
async fn nodelay_of(pool: &PgPool, url: &str) -> bool {
    let options: PgConnectOptions = url.parse().expect("URL");
    let peers: Vec<SocketAddr> = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("resolve")
        .collect();
    let mut conn = pool.acquire().await.expect("a connection");
    let port = local_port(&mut conn).await;
    let sockets = nodelay::sockets_connected_to(&peers).expect("list sockets");
    let socket = sockets
        .iter()
        .find(|s| s.local_addr().is_ok_and(|a| a.port() == port))
        .expect("the connection's socket is found");
    socket.nodelay().expect("read TCP_NODELAY")
}

/// One test, in this order: the pool sets the option on every socket of the process connected
/// to the database, so a bare pool checked afterwards (or by a test running beside this one)
/// would have it too.
#[tokio::test]
async fn the_pool_sets_tcp_nodelay_on_its_postgresql_connections_where_sqlx_alone_does_not() {
    let db = TestDatabase::new().await;
    let bare = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .expect("pool");
    // When this fails, sqlx sets the option itself and `nodelay` can go.
    assert!(
        !nodelay_of(&bare, &db.url).await,
        "sqlx alone leaves Nagle on"
    );

    let settings = receiver::settings(&db.url).database;
    let pool = billhook_core::db::connect(&settings).await.expect("pool");
    assert!(nodelay_of(&pool, &db.url).await);
}
