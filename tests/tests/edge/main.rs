//! The edge against a real redis-server (module or Lua twin) and a real PostgreSQL, through
//! real HTTP.

#![allow(clippy::unwrap_used)]

mod api;
mod common;
mod connections;
mod durability;
mod hardening;
mod login;
mod queue;
