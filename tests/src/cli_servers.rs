//! [`CliServers`]: a Redis server with the module and a PostgreSQL database, for running the
//! built `flash` program against them as an operator would.

use std::process::{Command, Output};

use flash_client::FlashClient;
use tokio_postgres::NoTls;

use crate::{PostgresServer, RedisServer, ServerOptions, flash_binary, module_path};

/// The default sale (`FLASH_SALE`) the commands run with.
pub const CLI_SALE: &str = "cli";

pub struct CliServers {
    pub redis: RedisServer,
    _postgres: PostgresServer,
    pub database_url: String,
}

impl CliServers {
    /// Panics when a server cannot start (a test's setup).
    pub fn start() -> CliServers {
        let redis = RedisServer::start(ServerOptions {
            module: Some(module_path().expect("the module is built")),
            ..ServerOptions::default()
        })
        .expect("redis-server starts");
        let postgres = PostgresServer::start().expect("PostgreSQL starts");
        let database_url = postgres.create_database().expect("a database");
        CliServers {
            redis,
            _postgres: postgres,
            database_url,
        }
    }

    /// `flash <args>` with this pair of servers in the environment (as `.env` would), run
    /// from a folder with no `.env` of its own.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(flash_binary());
        command
            .args(args)
            .env("REDIS_URL", self.redis.url())
            .env("DATABASE_URL", &self.database_url)
            .env("FLASH_SALE", CLI_SALE)
            .env("RUST_LOG", "warn")
            .current_dir(std::env::temp_dir());
        command
    }

    /// Runs `flash <args>` to its end.
    pub fn flash(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run flash {args:?}: {error}"))
    }

    /// `flash <args>`, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.flash(args);
        assert!(output.status.success(), "{args:?}: {}", explain(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub async fn database(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.database_url, NoTls)
            .await
            .expect("PostgreSQL accepts a connection");
        tokio::spawn(connection);
        client
    }

    pub async fn engine(&self) -> FlashClient {
        FlashClient::connect(&self.redis.url())
            .await
            .expect("Redis accepts a connection")
    }
}

/// A finished command's status and both outputs, for an assertion's message.
pub fn explain(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
