//! One virtual buyer: the edge's HTTP API as the crowd calls it (flash-api-client, each
//! request timed and recorded), and the journey (sign in, add one to three products, maybe
//! remove one, then leave or check out), leaving behind a [`CartRecord`] of what the edge
//! told it, which the verification checks against PostgreSQL and the engine.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use flash_api_client::{ApiError, Cart, EdgeClient, LineChange, ProductsPage, Sale};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::stats::{Outcome, Route, Stats};

/// The edge's API over one keep-alive connection (a crowd task's, for one buyer after
/// another), every crowd request timed and recorded.
pub struct Api {
    client: EdgeClient,
    base: String,
    /// Where crowd requests are recorded; None for the setup reads before the crowd.
    stats: Option<Arc<Stats>>,
}

/// A recorded request: its result, what it counts as, and when it ended.
pub struct Timed<T> {
    pub result: Result<T, ApiError>,
    pub outcome: Outcome,
    /// When the reply was complete.
    pub at: Instant,
}

impl<T> Timed<T> {
    /// No reply, a server error, or a success reply that was not the API's: the request may
    /// or may not have taken effect.
    fn uncertain(&self) -> bool {
        match &self.outcome {
            Outcome::Success(_) => false,
            Outcome::Refused(status, _) => *status >= 500 || (200..300).contains(status),
            Outcome::Transport => true,
        }
    }
}

/// What a call's result counts as: its documented status, a refusal's word (`HTTP <status>`
/// when the reply had no error body), or no reply.
fn outcome<T>(route: Route, result: &Result<T, ApiError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success(route.status()),
        Err(error) => match (error.status(), error.code()) {
            (Some(status), Some(code)) => Outcome::Refused(status.as_u16(), code.to_owned()),
            (Some(status), None) => {
                Outcome::Refused(status.as_u16(), format!("HTTP {}", status.as_u16()))
            }
            (None, _) => Outcome::Transport,
        },
    }
}

impl Api {
    /// A client of the edge at `base`, on a connection of its own.
    pub fn new(base: &str) -> Result<Api> {
        let client = EdgeClient::new(base)
            .with_context(|| format!("--url {base}"))?
            // Long enough for a loaded edge, short enough that a stuck one ends the run.
            .with_timeouts(Duration::from_secs(10), Duration::from_secs(30));
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_owned(),
            stats: None,
        })
    }

    /// Records every request into `stats`.
    pub fn recording(self, stats: Arc<Stats>) -> Api {
        Api {
            stats: Some(stats),
            ..self
        }
    }

    /// A setup read: not part of the crowd's numbers.
    async fn setup<T>(
        &self,
        path: &str,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T> {
        call.await.map_err(|error| match error {
            ApiError::Connect { .. } | ApiError::Transport(_) => anyhow!(error).context(format!(
                "cannot reach the edge at {}{path}: is it running?",
                self.base
            )),
            refused => anyhow!("GET {}{path}: {refused}", self.base),
        })
    }

    /// `GET /sale`, before the crowd.
    pub async fn sale(&self) -> Result<Sale> {
        self.setup("/sale", self.client.sale()).await
    }

    /// `GET /products/`, before the crowd.
    pub async fn products(&self, skip: u64, limit: u64) -> Result<ProductsPage> {
        let path = format!("/products/?skip={skip}&limit={limit}");
        self.setup(&path, self.client.products(skip, limit)).await
    }

    /// Times and records one crowd request.
    async fn timed<T>(
        &self,
        route: Route,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Timed<T> {
        let started = Instant::now();
        let result = call.await;
        let at = Instant::now();
        let outcome = outcome(route, &result);
        if let Some(stats) = &self.stats {
            stats.record(route, at - started, at, &outcome);
        }
        Timed {
            result,
            outcome,
            at,
        }
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

    /// Learns the cart from an add or remove reply (ended `at`): its lines and its hold
    /// deadline.
    fn learn(&mut self, cart: &Cart, at: Instant) {
        self.lines = cart
            .lines
            .iter()
            .map(|line| (line.product_id, line.qty))
            .collect();
        self.hold_deadline = Some(at + Duration::from_millis(cart.hold_left_ms()));
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
    // The connection's client forgets the previous buyer's session as it signs this one in.
    let signed_in = api
        .timed(Route::Session, api.client.sign_in(&record.username))
        .await;
    let Ok(signed) = signed_in.result else {
        return record;
    };
    record.user_id = Some(signed.user.id);

    for product in shop.pick(&mut rng) {
        let line = LineChange::one(product, &record.cart_id);
        let reply = api.timed(Route::CartAdd, api.client.cart_add(&line)).await;
        record.uncertain |= reply.uncertain();
        if let Ok(change) = &reply.result {
            record.held = true;
            record.learn(&change.cart, reply.at);
        }
    }
    if rng.random_bool(shop.remove) && !record.lines.is_empty() {
        let held: Vec<i64> = record.lines.keys().copied().collect();
        let product = held[rng.random_range(0..held.len())];
        let line = LineChange::one(product, &record.cart_id);
        let reply = api
            .timed(Route::CartRemove, api.client.cart_remove(&line))
            .await;
        record.uncertain |= reply.uncertain();
        if let Ok(change) = &reply.result {
            record.learn(&change.cart, reply.at);
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
        .timed(Route::Checkout, api.client.checkout(&record.cart_id))
        .await;
    let uncertain = reply.uncertain();
    record.fate = match (reply.result, reply.outcome) {
        (Ok(order), _) => Fate::CheckedOut {
            order_id: order.order_id,
            units: order.units,
            at: reply.at,
        },
        _ if uncertain => Fate::CheckoutUnknown,
        (Err(_), Outcome::Refused(_, word)) => Fate::CheckoutRefused(word),
        (Err(_), _) => Fate::CheckoutUnknown,
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
