//! A PostgreSQL cluster per test with a fresh database, and a connection to it.

use flash_tests::PostgresServer;
use tokio_postgres::{Client, NoTls};

pub struct Database {
    pub server: PostgresServer,
    pub url: String,
}

impl Database {
    pub async fn start() -> Database {
        let server = PostgresServer::start().expect("postgres starts");
        let url = server.create_database().expect("a fresh database");
        Database { server, url }
    }

    /// A new connection; its driver task runs on the test's runtime.
    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.url, self.server.log()));
        tokio::spawn(connection);
        client
    }
}
