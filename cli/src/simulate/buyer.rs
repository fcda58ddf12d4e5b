//! One virtual buyer: the edge's HTTP API as a browser calls it, and the journey (sign in,
//! add one to three products, maybe remove one, then leave or check out), leaving behind a
//! [`CartRecord`] of what the edge told it, which the verification checks against
//! PostgreSQL and the engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::stats::{Outcome, Route, Stats};

/// The edge's API over one pooled HTTP client, every crowd request timed and recorded.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// Where crowd requests are recorded; None for the setup reads before the crowd.
    stats: Option<Arc<Stats>>,
}

/// A reply to a recorded request.
pub struct Reply {
    pub outcome: Outcome,
    /// The JSON body (Null when there was none, or no reply).
    pub body: Value,
    /// When the reply was complete.
    pub at: Instant,
}

impl Reply {
    fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Success(_))
    }

    /// No reply, or a server error: the request may or may not have taken effect.
    fn uncertain(&self) -> bool {
        match &self.outcome {
            Outcome::Success(_) => false,
            Outcome::Refused(status, _) => *status >= 500,
            Outcome::Transport => true,
        }
    }
}

impl Api {
    /// `pool`: connections kept open to the edge, one per buyer in flight, so a buyer never
    /// waits for a connection another one holds.
    pub fn new(base: &str, pool: usize) -> Result<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .connect_timeout(Duration::from_secs(10))
            // Long enough for a loaded edge, short enough that a stuck one ends the run.
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            stats: None,
        })
    }

    /// The same client (and connection pool), recording into `stats`.
    pub fn recording(&self, stats: Arc<Stats>) -> Api {
        Api {
            stats: Some(stats),
            ..self.clone()
        }
    }

    /// A setup read (`/sale`, `/products/`): not part of the crowd's numbers.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach the edge at {url}: is it running?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
    }

    pub async fn post(&self, route: Route, token: Option<&str>, body: &Value) -> Reply {
        let started = Instant::now();
        let mut request = self
            .http
            .post(format!("{}{}", self.base, route.path()))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (outcome, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Ok(text) => {
                        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let outcome = if (200..300).contains(&status) {
                            Outcome::Success(status)
                        } else {
                            let word = body["error"]
                                .as_str()
                                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
                            Outcome::Refused(status, word)
                        };
                        (outcome, body)
                    }
                    Err(_) => (Outcome::Transport, Value::Null),
                }
            }
            Err(_) => (Outcome::Transport, Value::Null),
        };
        let at = Instant::now();
        if let Some(stats) = &self.stats {
            stats.record(route, at - started, at, &outcome);
        }
        Reply { outcome, body, at }
    }
}

/// What the buyers choose from, and how they behave.
pub struct Shop {
    /// Product ids, hottest first.
    pub products: Vec<i64>,
    /// Zipf weights over `products`: product k is picked in proportion to 1/k, so the first
    /// few sell out while the tail keeps stock, as in a real drop.
    weights: WeightedIndex<f64>,
    pub abandon: f64,
    pub remove: f64,
}

impl Shop {
    pub fn new(products: Vec<i64>, abandon: f64, remove: f64) -> Result<Shop> {
        let weights = WeightedIndex::new((1..=products.len()).map(|rank| 1.0 / rank as f64))
            .context("no products to buy")?;
        Ok(Shop {
            products,
            weights,
            abandon,
            remove,
        })
    }

    /// One to three distinct products, drawn by popularity.
    fn pick(&self, rng: &mut StdRng) -> Vec<i64> {
        let wanted = rng.random_range(1..=3).min(self.products.len());
        let mut picks: Vec<i64> = Vec::with_capacity(wanted);
        // Drawing until distinct ends fast: even the hottest of two products has 2/3 of the
        // weight. The bound only guards against a pathological weight table.
        for _ in 0..64 {
            if picks.len() == wanted {
                break;
            }
            let product = self.products[self.weights.sample(rng)];
            if !picks.contains(&product) {
                picks.push(product);
            }
        }
        picks
    }
}

/// How a buyer's visit ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sign-in refused or unanswered: nothing else was tried.
    NoSession,
    /// Every add was refused (sold out, …), so there was nothing to check out.
    EmptyHanded,
    /// Left with the cart as it was: its hold must run out by itself.
    Abandoned,
    /// 202: the order is accepted.
    CheckedOut {
        order_id: String,
        units: i64,
        at: Instant,
    },
    /// Checkout refused with this word (`EMPTY` after removing the only line, `EXPIRED`, …).
    CheckoutRefused(String),
    /// Checkout sent, but no reply or a server error: the order may exist.
    CheckoutUnknown,
}

/// What one buyer did and was told.
#[derive(Clone, Debug)]
pub struct CartRecord {
    pub cart_id: String,
    pub username: String,
    /// The user's id (the engine's user), from the sign-in reply.
    pub user_id: Option<i64>,
    /// Some add succeeded: the cart exists in the engine.
    pub held: bool,
    /// A request got no reply or a server error, so `held` and `lines` may be off.
    pub uncertain: bool,
    /// The cart as the edge last showed it: product → units.
    pub lines: BTreeMap<i64, i64>,
    /// When the cart's hold ends, on this machine's clock (the edge's `deadline_ms −
    /// now_ms`, so the two clocks need not agree).
    pub hold_deadline: Option<Instant>,
    pub fate: Fate,
}

impl CartRecord {
    pub fn units(&self) -> i64 {
        self.lines.values().sum()
    }

    /// Learns the cart from an add or remove reply: its lines and its hold deadline.
    fn learn(&mut self, reply: &Reply) {
        let cart = &reply.body["cart"];
        if let Some(lines) = cart["lines"].as_array() {
            self.lines = lines
                .iter()
                .filter_map(|line| Some((line["product_id"].as_i64()?, line["qty"].as_i64()?)))
                .collect();
        }
        if let (Some(deadline), Some(now)) = (cart["deadline_ms"].as_i64(), cart["now_ms"].as_i64())
        {
            let left = Duration::from_millis(u64::try_from(deadline - now).unwrap_or(0));
            self.hold_deadline = Some(reply.at + left);
        }
    }
}

/// Buyer `n` of run `run_id`: the whole visit. Its choices come from `seed`, so a run's
/// crowd can be replayed (the timing, and so who gets the last units, cannot).
pub async fn journey(api: &Api, shop: &Shop, run_id: &str, n: usize, seed: u64) -> CartRecord {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut record = CartRecord {
        cart_id: uuid::Uuid::new_v4().to_string(),
        username: format!("sim-{run_id}-{n}"),
        user_id: None,
        held: false,
        uncertain: false,
        lines: BTreeMap::new(),
        hold_deadline: None,
        fate: Fate::NoSession,
    };
    let signed_in = api
        .post(
            Route::Session,
            None,
            &json!({ "username": record.username }),
        )
        .await;
    let token = signed_in.body["token"].as_str().map(str::to_owned);
    record.user_id = signed_in.body["user"]["id"].as_i64();
    let Some(token) = token.filter(|_| signed_in.ok()) else {
        return record;
    };
    let token = Some(token.as_str());

    for product in shop.pick(&mut rng) {
        let reply = api
            .post(
                Route::CartAdd,
                token,
                &json!({ "product_id": product, "cart_id": record.cart_id }),
            )
            .await;
        record.uncertain |= reply.uncertain();
        if reply.ok() {
            record.held = true;
            record.learn(&reply);
        }
    }
    if rng.random_bool(shop.remove) && !record.lines.is_empty() {
        let held: Vec<i64> = record.lines.keys().copied().collect();
        let product = held[rng.random_range(0..held.len())];
        let reply = api
            .post(
                Route::CartRemove,
                token,
                &json!({ "product_id": product, "cart_id": record.cart_id }),
            )
            .await;
        record.uncertain |= reply.uncertain();
        if reply.ok() {
            record.learn(&reply);
        }
    }
    // Decided for everyone, so the fraction of abandoners holds whatever the adds got.
    let abandon = rng.random_bool(shop.abandon);
    if abandon {
        record.fate = Fate::Abandoned;
        return record;
    }
    if !record.held && !record.uncertain {
        // No cart exists (a refused add changes nothing): a shopper seeing only "sold out"
        // does not press checkout.
        record.fate = Fate::EmptyHanded;
        return record;
    }
    let reply = api
        .post(
            Route::Checkout,
            token,
            &json!({ "cart_id": record.cart_id }),
        )
        .await;
    record.fate = match &reply.outcome {
        Outcome::Success(_) => Fate::CheckedOut {
            order_id: reply.body["order_id"]
                .as_str()
                .unwrap_or(&record.cart_id)
                .to_owned(),
            units: reply.body["units"].as_i64().unwrap_or(-1),
            at: reply.at,
        },
        _ if reply.uncertain() => Fate::CheckoutUnknown,
        Outcome::Refused(_, word) => Fate::CheckoutRefused(word.clone()),
        Outcome::Transport => Fate::CheckoutUnknown,
    };
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_distinct_and_favour_the_first_products() {
        let shop = Shop::new((1..=10).collect(), 0.1, 0.1).expect("a shop");
        let mut rng = StdRng::seed_from_u64(7);
        let mut first = 0;
        let mut last = 0;
        for _ in 0..2000 {
            let picks = shop.pick(&mut rng);
            assert!((1..=3).contains(&picks.len()), "{picks:?}");
            let mut distinct = picks.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), picks.len(), "{picks:?}");
            first += usize::from(picks.contains(&1));
            last += usize::from(picks.contains(&10));
        }
        assert!(
            first > 3 * last,
            "product 1 in {first} carts, product 10 in {last}"
        );
    }

    #[test]
    fn a_single_product_shop_picks_it_once() {
        let shop = Shop::new(vec![42], 0.0, 0.0).expect("a shop");
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            assert_eq!(shop.pick(&mut rng), [42]);
        }
    }
}
