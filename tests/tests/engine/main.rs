//! The engine suite: every test here runs twice, against `redis-server --loadmodule` (the
//! module) and against a plain `redis-server` (the Lua twin), each started by the harness on
//! a free loopback port and killed when the test ends.

#![allow(clippy::unwrap_used)]

mod budgets;
mod common;
mod concurrency;
mod conformance;
mod durability;
mod expiry;
mod parity;
mod queue;
mod retention;
mod settings;
