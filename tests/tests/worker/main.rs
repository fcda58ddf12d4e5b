//! The worker suite: a real PostgreSQL (initdb into a temp dir, one fresh database per
//! test) and, where orders flow, a real redis-server.

#![allow(clippy::unwrap_used)]

mod apply;
mod common;
mod crash;
mod flow;
mod sales;
mod schema;
