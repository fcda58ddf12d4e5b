//! [`FlashClient`]: the FLASH commands through the module or the Lua twin.

use flash_core::args::DEFAULT_HOLD_MS;
use flash_core::cmd::{
    Admit, Available, Buy, CartInfo, Checkout, Expire, Info, Join, Load, Position, Release,
    Reserve, SaleCmd, Settle, Verdict,
};
use flash_core::keys::{SaleKeys, parse_deadline_entry};
use flash_core::model::{CartState, Lanes, Sale};
use flash_core::names;
use flash_core::{Command, CommandSpec, Sku};
use redis::cluster_routing::Slot;
use redis::{AsyncCommands, Value};

use crate::connection::FlashConnection;
use crate::error::ClientError;
use crate::lua;
use crate::replies::{Admission, CartView, Order, Place, Reader, Reservation, SaleInfo};

/// Which implementation of the commands the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `redis-server --loadmodule libflash_module.so`: `FLASH.*` are server commands.
    Module,
    /// A plain server: the commands run as the Lua twin's scripts.
    Lua,
}

/// FLASH.SALE's options; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaleSettings {
    pub hold_ms: Option<i64>,
    pub limit: Option<i64>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// How long finished carts are kept (ms); 0 = forever.
    pub retain_ms: Option<i64>,
    /// The waiting room: admissions per second, most admissions live at once (either
    /// above 0 turns it on; both 0 off), how long an admission lasts unused, how long a
    /// waiting shopper may go without asking, and the seed of the pre-queue's draw.
    pub queue_rate: Option<i64>,
    pub queue_cap: Option<i64>,
    pub admit_ms: Option<i64>,
    pub idle_ms: Option<i64>,
    pub seed: Option<flash_core::model::Seed>,
}

/// A cheap-to-clone handle: clones share one multiplexed connection (per node, on a
/// cluster).
#[derive(Clone)]
pub struct FlashClient {
    conn: FlashConnection,
    backend: Backend,
}

impl FlashClient {
    /// Connects as `url` (`REDIS_URL`) says, a single server (`redis://…`) or a cluster
    /// (`redis+cluster://host:port,host:port,…`: see [`crate::connection`]), and picks the
    /// backend: the module when the server knows `FLASH.RESERVE`.
    ///
    /// The connection is multiplexed (clones share it, requests are pipelined) and
    /// recovers by itself: after Redis restarts, the link drops or a cluster fails over,
    /// the calls in flight may fail and the next ones reconnect.
    pub async fn connect(url: &str) -> Result<FlashClient, ClientError> {
        FlashClient::with_connection(FlashConnection::connect(url).await?).await
    }

    pub async fn with_connection(
        conn: impl Into<FlashConnection>,
    ) -> Result<FlashClient, ClientError> {
        let mut conn = conn.into();
        let mut ask = redis::cmd("COMMAND");
        ask.arg("INFO").arg("FLASH.RESERVE");
        // Every master of a cluster is asked: a sale runs on whichever master owns its
        // slot, so the module must be on all of them or on none.
        let mut backends = Vec::new();
        for reply in conn.run_on_masters(&ask).await? {
            backends.push(match reply.extract_error()? {
                Value::Array(items) if items.first().is_some_and(|i| *i != Value::Nil) => {
                    Backend::Module
                }
                _ => Backend::Lua,
            });
        }
        let backend = match backends.first() {
            Some(&first) if backends.iter().all(|&backend| backend == first) => first,
            Some(_) => {
                return Err(ClientError::Reply {
                    command: "COMMAND INFO",
                    detail: "the flash module is loaded on some cluster masters only: load \
                             it on every node, or on none for the Lua twin"
                        .into(),
                });
            }
            None => {
                return Err(ClientError::Reply {
                    command: "COMMAND INFO",
                    detail: "no master answered".into(),
                });
            }
        };
        Ok(FlashClient { conn, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying connection, for plain Redis commands (on a cluster, routed by their
    /// keys).
    pub fn connection(&self) -> FlashConnection {
        self.conn.clone()
    }

    /// PING: the server answers (health checks).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Runs a command line as given (e.g. `"FLASH.RESERVE"` and its arguments, well-formed
    /// or not) on either backend and returns the raw reply: for the conformance suite and
    /// operators' tools, which must see exactly what any Redis client would. Programs send
    /// typed commands ([`FlashClient::run`] and the methods below). Engine refusals come back
    /// as [`ClientError::Flash`].
    pub async fn call(&self, command: &str, args: &[String]) -> Result<Value, ClientError> {
        let mut replies = self
            .call_many(command, std::slice::from_ref(&args.to_vec()))
            .await?;
        replies.pop().unwrap_or_else(|| {
            Err(ClientError::Reply {
                command: "call",
                detail: "no reply".into(),
            })
        })
    }

    /// Runs `command` once per argument list in one pipeline (one round trip), on either
    /// backend. Each command gets its own result; the outer error is connection trouble.
    pub async fn call_many(
        &self,
        command: &str,
        calls: &[Vec<String>],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let calls: Vec<(&str, &[String])> = calls.iter().map(|args| (command, &args[..])).collect();
        self.call_each(&calls).await
    }

    /// Runs several commands, each with its arguments, in one pipeline (one round trip), on
    /// either backend. Each command gets its own result, in the order of `calls`; the outer
    /// error is connection trouble.
    ///
    /// On a cluster a pipeline must stay within one slot (the crate sends it whole to the
    /// node of its first key), so the calls are split by their sale's slot: one pipeline
    /// per slot, in the calls' order within it, all sent at once. Calls on different sales
    /// are independent, so only the order within a slot matters. There, connection trouble
    /// with one node fails only the calls sent to it, each with that error.
    pub async fn call_each(
        &self,
        calls: &[(&str, &[String])],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        // An empty pipeline would never be answered (nothing is sent, a reply is awaited).
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.pipelines_for(calls);
        if let [only] = &groups[..] {
            return self.call_pipeline(calls, only).await;
        }
        let runs = futures::future::join_all(
            groups
                .iter()
                .map(|indices| self.call_pipeline(calls, indices)),
        )
        .await;
        let mut results: Vec<Option<Result<Value, ClientError>>> = Vec::new();
        results.resize_with(calls.len(), || None);
        for (indices, run) in groups.iter().zip(runs) {
            match run {
                Ok(replies) => {
                    for (&i, reply) in indices.iter().zip(replies) {
                        results[i] = Some(reply);
                    }
                }
                Err(error) => {
                    for &i in indices {
                        results[i] = Some(Err(error.clone()));
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(no_reply))
            .collect())
    }

    /// The calls' indices, one list per pipeline: all of them on a single server, one list
    /// per slot (in order of first appearance, each ascending) on a cluster.
    fn pipelines_for(&self, calls: &[(&str, &[String])]) -> Vec<Vec<usize>> {
        if !self.conn.is_cluster() {
            return vec![(0..calls.len()).collect()];
        }
        let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, (_, args)) in calls.iter().enumerate() {
            let sale = args.first().map(String::as_str).unwrap_or_default();
            let slot = Slot::for_key(self.route_key(sale));
            match groups.iter_mut().find(|(known, _)| *known == slot) {
                Some((_, indices)) => indices.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        groups.into_iter().map(|(_, indices)| indices).collect()
    }

    /// The key a call on `sale` is routed by: the sale itself for the module (each command
    /// declares its first argument as its key), the sale's first key for a script (its
    /// KEYS[1]). Both hash to the sale's slot for a valid name; a name with braces is
    /// grouped where the crate will really send it.
    fn route_key(&self, sale: &str) -> String {
        match self.backend {
            Backend::Module => sale.to_owned(),
            Backend::Lua => SaleKeys::new(sale).sale(),
        }
    }

    /// Runs `calls[i]` for each of `indices` in one pipeline; the replies in that order.
    async fn call_pipeline(
        &self,
        calls: &[(&str, &[String])],
        indices: &[usize],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let mut conn = self.conn.clone();
        let mut results: Vec<Option<Result<Value, ClientError>>> = Vec::new();
        results.resize_with(calls.len(), || None);
        let mut todo: Vec<usize> = indices.to_vec();
        // Twice at most: a NOSCRIPT (the script cache was flushed, or a replica was promoted
        // that never loaded it) loads the scripts again and retries just the calls that did
        // not run.
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                let (command, args) = calls[i];
                pipe.add_command(self.command_for(command, args).await?);
            }
            let replies: Vec<redis::RedisResult<Value>> = match pipe.query_async(&mut conn).await {
                Ok(replies) => replies,
                // The cluster connection, retrying a pipeline after a failover, may answer a
                // NOSCRIPT for the whole pipeline instead of in its place. With one call that
                // is the call's own answer (the script did not run); with several it is not
                // known which ran, so the error stands.
                Err(error) if error.code() == Some("NOSCRIPT") && todo.len() == 1 => {
                    vec![Err(error)]
                }
                Err(error) => return Err(error.into()),
            };
            let mut again = Vec::new();
            let mut first_missing: Option<usize> = None;
            for (&i, reply) in todo.iter().zip(replies) {
                match reply {
                    Err(error) if error.code() == Some("NOSCRIPT") && attempt == 0 => {
                        first_missing.get_or_insert(i);
                        again.push(i);
                    }
                    // A read that ran after a call that did not run has seen the state
                    // before it (an add-to-cart's cart view without the add): read again
                    // after the retry, in pipeline order. Reads change nothing, so running
                    // one twice is safe; writes that ran are never run again.
                    Ok(_) if first_missing.is_some_and(|m| i > m) && is_read(calls[i].0) => {
                        again.push(i);
                    }
                    other => results[i] = Some(other.map_err(ClientError::from)),
                }
            }
            if again.is_empty() {
                break;
            }
            let mut loaded = std::collections::BTreeSet::new();
            for &i in &again {
                let (command, args) = calls[i];
                if loaded.insert(command)
                    && let Some(load) = lua::load_command(command)
                {
                    // Where the pipeline ran: every call here is on one slot, so its
                    // master is the node that answered NOSCRIPT.
                    let sale = args.first().map(String::as_str).unwrap_or_default();
                    conn.run_at_key(&self.route_key(sale), &load)
                        .await?
                        .extract_error()?;
                }
            }
            todo = again;
        }
        Ok(indices
            .iter()
            .map(|&i| results[i].take().unwrap_or_else(no_reply))
            .collect())
    }

    /// The command that runs `command args` here: itself, or the Lua twin's EVALSHA.
    async fn command_for(&self, command: &str, args: &[String]) -> Result<redis::Cmd, ClientError> {
        match self.backend {
            Backend::Module => {
                let mut cmd = redis::cmd(command);
                cmd.arg(args);
                Ok(cmd)
            }
            Backend::Lua => {
                let script = lua::script(command).ok_or_else(|| ClientError::Reply {
                    command: "call",
                    detail: format!("no script for {command}"),
                })?;
                let sale = args.first().map(String::as_str).unwrap_or_default();
                let carts = self.script_carts(command, args).await?;
                let carts: Vec<&str> = carts.iter().map(String::as_str).collect();
                let keys = lua::keys(sale, &carts);
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(script.get_hash())
                    .arg(keys.len())
                    .arg(keys)
                    .arg(args);
                Ok(cmd)
            }
        }
    }

    /// The carts a script must be given in KEYS: the one the command names (the table's cart
    /// argument), or for FLASH.EXPIRE the earliest deadlines (the script rechecks each
    /// against the server's clock).
    async fn script_carts(
        &self,
        command: &str,
        args: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let Some(spec) = CommandSpec::find(command) else {
            return Ok(Vec::new());
        };
        if spec.name != "FLASH.EXPIRE" {
            return Ok(spec.cart_in(args).map(str::to_owned).into_iter().collect());
        }
        // Core reads the line as the script will; a line it refuses needs no carts (the
        // script answers the same refusal).
        let raw: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        let Ok(Command::Expire(Expire { sale, count })) = Command::parse(spec.name, &raw) else {
            return Ok(Vec::new());
        };
        // Due by the server's clock, which the script rechecks; a cart falling due in
        // between waits for the next call. (On a cluster TIME goes to any node: their
        // clocks may differ a little, and the script's own check is the one that counts.)
        // The reads are routed by the sale's keys, to the sale's master.
        let mut conn = self.conn.clone();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let keys = SaleKeys::new(&sale);
        let (hold_ms, lanes): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(keys.sale())
            .arg(names::sale::HOLD_MS.as_str())
            .arg(names::sale::LANES.as_str())
            .query_async(&mut conn)
            .await?;
        let sale_lanes = Sale {
            hold_ms: hold_ms.unwrap_or(DEFAULT_HOLD_MS),
            lanes: Lanes::parse(lanes.unwrap_or_default().as_bytes()),
            ..Sale::default()
        }
        .lanes_to_look_at();
        let wanted = count.min(LUA_EXPIRE_CARTS);
        let mut due: Vec<(i64, String)> = Vec::new();
        for hold_ms in sale_lanes.iter() {
            let entries: Vec<String> = conn
                .lrange(keys.deadlines(hold_ms), 0, wanted as isize - 1)
                .await?;
            due.extend(
                entries
                    .iter()
                    .filter_map(|entry| parse_deadline_entry(entry.as_bytes()))
                    .take_while(|(deadline_ms, _)| *deadline_ms <= now_ms)
                    .map(|(deadline_ms, cart)| (deadline_ms, cart.to_owned())),
            );
        }
        due.sort();
        due.truncate(wanted as usize);
        Ok(due.into_iter().map(|(_, cart)| cart).collect())
    }

    /// Runs a typed command on either backend; the raw reply.
    pub async fn run(&self, command: &Command) -> Result<Value, ClientError> {
        self.call(command.spec().name, &command.to_args()).await
    }

    async fn run_read(&self, command: Command) -> Result<(Value, Reader), ClientError> {
        let value = self.run(&command).await?;
        Ok((
            value,
            Reader {
                command: command.spec().name,
            },
        ))
    }

    /// FLASH.SALE: creates the sale or changes the given settings.
    pub async fn sale(&self, sale: &str, settings: &SaleSettings) -> Result<(), ClientError> {
        let command = Command::Sale(SaleCmd {
            sale: sale.to_owned(),
            hold_ms: settings.hold_ms,
            limit: settings.limit,
            start_ms: settings.start_ms,
            end_ms: settings.end_ms,
            retain_ms: settings.retain_ms,
            queue_rate: settings.queue_rate,
            queue_cap: settings.queue_cap,
            admit_ms: settings.admit_ms,
            idle_ms: settings.idle_ms,
            seed: settings.seed,
        });
        let (value, reader) = self.run_read(command).await?;
        reader.text(&value).map(drop)
    }

    /// FLASH.LOAD: sets available units; returns the number of SKUs set.
    pub async fn load(&self, sale: &str, stock: &[(Sku, i64)]) -> Result<i64, ClientError> {
        self.load_with(sale, false, stock).await
    }

    /// FLASH.LOAD TOTAL: each SKU's whole unsold stock (the database's count); available
    /// becomes it minus the units held or pending. Returns the number of SKUs set.
    pub async fn load_total(&self, sale: &str, stock: &[(Sku, i64)]) -> Result<i64, ClientError> {
        self.load_with(sale, true, stock).await
    }

    async fn load_with(
        &self,
        sale: &str,
        total: bool,
        stock: &[(Sku, i64)],
    ) -> Result<i64, ClientError> {
        let command = Command::Load(Load {
            sale: sale.to_owned(),
            total,
            stock: stock.to_vec(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.int(&value)
    }

    /// FLASH.AVAILABLE: units per SKU in argument order; `None` for a SKU never loaded.
    pub async fn available(
        &self,
        sale: &str,
        skus: &[Sku],
    ) -> Result<Vec<Option<i64>>, ClientError> {
        let command = Command::Available(Available {
            sale: sale.to_owned(),
            skus: skus.to_vec(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader
            .array(&value, Some(skus.len()))?
            .iter()
            .map(|v| match v {
                Value::Nil => Ok(None),
                other => reader.int(other).map(Some),
            })
            .collect()
    }

    pub async fn reserve(
        &self,
        sale: &str,
        cart: &str,
        user: &str,
        sku: Sku,
        qty: i64,
    ) -> Result<Reservation, ClientError> {
        let command = Command::Reserve(line(sale, cart, user, sku, qty));
        let (value, reader) = self.run_read(command).await?;
        reader.reservation(&value)
    }

    pub async fn release(
        &self,
        sale: &str,
        cart: &str,
        user: &str,
        sku: Sku,
        qty: i64,
    ) -> Result<Reservation, ClientError> {
        let command = Command::Release(release_line(sale, cart, user, sku, qty));
        let (value, reader) = self.run_read(command).await?;
        reader.reservation(&value)
    }

    /// FLASH.RESERVE (`release` false) or FLASH.RELEASE, then FLASH.CART of the same cart, in
    /// one round trip: what a shop's "add to cart" shows. The view is read after the change.
    pub async fn change_and_view(
        &self,
        release: bool,
        sale: &str,
        cart: &str,
        user: &str,
        sku: Sku,
        qty: i64,
    ) -> Result<(Reservation, CartView), ClientError> {
        let change = if release {
            Command::Release(release_line(sale, cart, user, sku, qty))
        } else {
            Command::Reserve(line(sale, cart, user, sku, qty))
        };
        let view = Command::Cart(CartInfo {
            sale: sale.to_owned(),
            cart: cart.to_owned(),
        });
        let (change_args, view_args) = (change.to_args(), view.to_args());
        let (change_name, view_name) = (change.spec().name, view.spec().name);
        let mut replies = self
            .call_each(&[(change_name, &change_args[..]), (view_name, &view_args[..])])
            .await?
            .into_iter();
        let no_reply = || ClientError::Reply {
            command: change_name,
            detail: "no reply".into(),
        };
        let changed = Reader {
            command: change_name,
        }
        .reservation(&replies.next().ok_or_else(no_reply)??)?;
        let view = Reader { command: view_name }.cart(&replies.next().ok_or_else(no_reply)??)?;
        Ok((changed, view))
    }

    pub async fn checkout(&self, sale: &str, cart: &str, user: &str) -> Result<Order, ClientError> {
        let command = Command::Checkout(Checkout {
            sale: sale.to_owned(),
            cart: cart.to_owned(),
            user: user.to_owned(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.order(&value)
    }

    pub async fn buy(
        &self,
        sale: &str,
        order: &str,
        user: &str,
        sku: Sku,
        qty: i64,
    ) -> Result<Order, ClientError> {
        let command = Command::Buy(Buy {
            reserve: line(sale, order, user, sku, qty),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.order(&value)
    }

    /// FLASH.SETTLE: returns the order's final state (settled or rejected).
    pub async fn settle(
        &self,
        sale: &str,
        order: &str,
        verdict: Verdict,
    ) -> Result<CartState, ClientError> {
        let mut states = self.settle_many(sale, &[(order, verdict)]).await?;
        states.pop().unwrap_or_else(|| {
            Err(ClientError::Reply {
                command: "FLASH.SETTLE",
                detail: "no reply".into(),
            })
        })
    }

    /// FLASH.SETTLE for many orders in one round trip: each order's final state, or the
    /// engine's refusal for that order.
    pub async fn settle_many(
        &self,
        sale: &str,
        verdicts: &[(&str, Verdict)],
    ) -> Result<Vec<Result<CartState, ClientError>>, ClientError> {
        let calls: Vec<Vec<String>> = verdicts
            .iter()
            .map(|&(order, verdict)| {
                Command::Settle(Settle {
                    sale: sale.to_owned(),
                    order: order.to_owned(),
                    verdict,
                })
                .to_args()
            })
            .collect();
        let reader = Reader {
            command: "FLASH.SETTLE",
        };
        Ok(self
            .call_many(reader.command, &calls)
            .await?
            .into_iter()
            .map(|reply| {
                let state = reader.text(&reply?)?;
                CartState::parse(state.as_bytes())
                    .ok_or_else(|| reader.fail(format!("unknown state {state}")))
            })
            .collect())
    }

    /// FLASH.EXPIRE: releases overdue holds; returns how many carts expired.
    pub async fn expire(&self, sale: &str, count: i64) -> Result<i64, ClientError> {
        let command = Command::Expire(Expire {
            sale: sale.to_owned(),
            count,
        });
        let (value, reader) = self.run_read(command).await?;
        reader.int(&value)
    }

    pub async fn cart(&self, sale: &str, cart: &str) -> Result<CartView, ClientError> {
        let command = Command::Cart(CartInfo {
            sale: sale.to_owned(),
            cart: cart.to_owned(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.cart(&value)
    }

    pub async fn info(&self, sale: &str) -> Result<SaleInfo, ClientError> {
        let command = Command::Info(Info {
            sale: sale.to_owned(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.info(&value)
    }

    /// FLASH.JOIN: joins the sale's waiting room (or keeps the place held).
    pub async fn join(&self, sale: &str, user: &str) -> Result<Place, ClientError> {
        let command = Command::Join(Join {
            sale: sale.to_owned(),
            user: user.to_owned(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.place(&value)
    }

    /// FLASH.POSITION: the shopper's place, and a sign of life.
    pub async fn position(&self, sale: &str, user: &str) -> Result<Place, ClientError> {
        let command = Command::Position(Position {
            sale: sale.to_owned(),
            user: user.to_owned(),
        });
        let (value, reader) = self.run_read(command).await?;
        reader.place(&value)
    }

    /// FLASH.ADMIT: runs the waiting room once (the module's timer does it by itself; the
    /// Lua twin needs a caller: the worker).
    pub async fn admit(&self, sale: &str, count: i64) -> Result<Admission, ClientError> {
        let command = Command::Admit(Admit {
            sale: sale.to_owned(),
            count,
        });
        let (value, reader) = self.run_read(command).await?;
        reader.admission(&value)
    }
}

/// A reserve's (or buy's) line.
fn line(sale: &str, cart: &str, user: &str, sku: Sku, qty: i64) -> Reserve {
    Reserve {
        sale: sale.to_owned(),
        cart: cart.to_owned(),
        user: user.to_owned(),
        sku,
        qty,
    }
}

fn release_line(sale: &str, cart: &str, user: &str, sku: Sku, qty: i64) -> Release {
    Release {
        sale: sale.to_owned(),
        cart: cart.to_owned(),
        user: user.to_owned(),
        sku,
        qty,
    }
}

/// Most due carts handed to one FLASH.EXPIRE script: more than its time budget
/// (`EXPIRE_BUDGET_US`) gets through, fewer than COUNT's 10,000 keys to ship and declare.
const LUA_EXPIRE_CARTS: i64 = 256;

fn no_reply() -> Result<Value, ClientError> {
    Err(ClientError::Reply {
        command: "call_each",
        detail: "no reply".into(),
    })
}

/// Commands that only read (the table says): safe to run again.
fn is_read(command: &str) -> bool {
    CommandSpec::find(command).is_some_and(|spec| !spec.writes)
}
