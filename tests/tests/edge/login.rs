//! The shop's login over real HTTP: tokens signed as the shop's identity provider would
//! (HS256 with the shared secret, RS256 and ES256 with the keys of `tests/fixtures/login`,
//! whose public halves the edge reads from a JWKS file) are exchanged for a session; every
//! kind of bad token is a 401 `BAD_TOKEN` with a JSON body; the demo login is off unless
//! asked for.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_api_client::{EdgeClient, LineChange};
use flash_edge::settings::LoginSettings;
use flash_tests::{Stack, StackOptions, workspace_root};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::{assert_error, assert_refused, browser, post_json, user_count};

const SECRET: &str = "the shop's shared secret, 32 bytes or more";
const ISSUER: &str = "https://login.shop.test";
const AUDIENCE: &str = "flash";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/fixtures/login").join(name)).expect("a fixture")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An edge with the shop's login (the secret and the JWKS, issuer and audience required) and
/// the demo login `demo`.
async fn shop(demo: bool) -> Stack {
    Stack::start(StackOptions {
        edge: Box::new(move |settings| {
            settings.login = LoginSettings {
                demo_login: demo,
                jwt_secret: Some(SECRET.to_owned()),
                jwt_jwks: Some(workspace_root().join("tests/fixtures/login/jwks.json")),
                jwt_issuer: Some(ISSUER.to_owned()),
                jwt_audience: Some(AUDIENCE.to_owned()),
                shop_login_url: Some("https://shop.test/sign-in".to_owned()),
            };
        }),
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts")
}

/// Claims as the shop's identity provider writes them, for `subject`, valid for a minute.
fn claims(subject: &str) -> Value {
    json!({
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 60,
        "iat": now(),
        "preferred_username": format!("{subject}-shop"),
    })
}

fn hs256(claims: &Value) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &hmac_key(SECRET.as_bytes()),
    )
}

fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("shop-rsa-1".to_owned());
    let key = EncodingKey::from_rsa_pem(&fixture("rs256-private.pem")).expect("the RSA key");
    sign(header, claims, &key)
}

fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&fixture("es256-private.pem")).expect("the EC key");
    sign(Header::new(Algorithm::ES256), claims, &key)
}

fn hmac_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).expect("an HMAC key")
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    encode(&header, claims, key).expect("a token")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `POST /session {"token": jwt}`, refused with 401 `BAD_TOKEN`; the message.
async fn refused(client: &EdgeClient, jwt: &str) -> String {
    let reply = post_json(client, "/session", json!({ "token": jwt })).await;
    assert_error(&reply, 401, "BAD_TOKEN").message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_token_of_each_kind_signs_its_subject_in_once() {
    let stack = shop(false).await;
    for (kind, jwt) in [
        ("HS256", hs256(&claims("u-100"))),
        ("RS256", rs256(&claims("u-200"))),
        ("ES256", es256(&claims("u-300"))),
    ] {
        let client = browser(&stack);
        let signed = client
            .sign_in_with_token(&jwt)
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error}"));
        assert!(
            signed.user.username.ends_with("-shop"),
            "{kind}: {signed:?}"
        );
        assert_eq!(client.whoami().await.unwrap(), signed.user, "{kind}");
        // The same subject again is the same user, however the token differs.
        let again = browser(&stack).sign_in_with_token(&jwt).await.unwrap();
        assert_eq!(again.user.id, signed.user.id, "{kind}");
    }
    let pg = stack.database().await.unwrap();
    let subjects: Vec<String> = pg
        .query(
            "SELECT subject FROM users WHERE subject IS NOT NULL ORDER BY subject",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(subjects, ["u-100", "u-200", "u-300"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_refused_with_401() {
    let stack = shop(false).await;
    let client = browser(&stack);
    let good = claims("u-1");
    let with = |change: Value| {
        let mut claims = good.clone();
        for (name, value) in change.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    };
    let forged = sign(
        Header::new(Algorithm::HS256),
        &good,
        &hmac_key(b"not the shop's secret, but long enough"),
    );
    assert!(refused(&client, &forged).await.contains("signature"));
    let expired = hs256(&with(json!({ "exp": now() - 120 })));
    assert!(refused(&client, &expired).await.contains("expired"));
    let early = hs256(&with(json!({ "nbf": now() + 600 })));
    assert!(refused(&client, &early).await.contains("not valid yet"));
    let elsewhere = rs256(&with(json!({ "aud": "another-app" })));
    assert!(refused(&client, &elsewhere).await.contains("audience"));
    let stranger = es256(&with(json!({ "iss": "https://evil.test" })));
    assert!(refused(&client, &stranger).await.contains("issuer"));
    let mut anonymous = good.clone();
    anonymous.as_object_mut().unwrap().remove("sub");
    assert!(refused(&client, &hs256(&anonymous)).await.contains("sub"));

    // `alg: none`: no signature at all.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good.to_string().as_bytes())
    );
    refused(&client, &unsigned).await;
    // Algorithm confusion: the RSA key's public half (which anyone may have) used as an
    // HS256 secret, under the RSA key's kid.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("shop-rsa-1".to_owned());
    let confused = sign(header, &good, &hmac_key(&fixture("rs256-public.pem")));
    refused(&client, &confused).await;
    // A valid token with its payload changed: u-1 becomes u-2.
    let valid = rs256(&good);
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(with(json!({ "sub": "u-2" })).to_string().as_bytes()),
        parts[2]
    );
    assert!(refused(&client, &tampered).await.contains("signature"));
    refused(&client, "not.a.token").await;

    // None of them made a user or a session; the valid one still works.
    assert_refused(client.whoami().await, 401, "UNAUTHENTICATED");
    assert_eq!(user_count(&stack).await, 0);
    client.sign_in_with_token(&valid).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lasts_no_longer_than_the_shop_token() {
    let stack = shop(false).await;
    let mut short = claims("u-7");
    short["exp"] = json!(now() + 45);
    let signed = browser(&stack)
        .sign_in_with_token(&hs256(&short))
        .await
        .unwrap();
    // The edge's token: base64url("v2:<id>:<expires>:…") "." tag.
    let payload = URL_SAFE_NO_PAD
        .decode(signed.token.split('.').next().unwrap())
        .unwrap();
    let payload = String::from_utf8(payload).unwrap();
    let expires: u64 = payload.split(':').nth(2).unwrap().parse().unwrap();
    assert!(
        expires <= now() + 45,
        "{payload}: the session outlives the shop's token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shoppers_token_cannot_reach_anothers_cart() {
    let stack = shop(false).await;
    let alice = browser(&stack);
    alice
        .sign_in_with_token(&rs256(&claims("alice-sub")))
        .await
        .unwrap();
    let cart = "alice-cart";
    alice.cart_add(&LineChange::one(1, cart)).await.unwrap();
    assert_eq!(alice.cart(cart).await.unwrap().cart_id, cart);

    let mallory = browser(&stack);
    mallory
        .sign_in_with_token(&es256(&claims("mallory-sub")))
        .await
        .unwrap();
    assert_refused(mallory.cart(cart).await, 404, "NOCART");
    assert_refused(mallory.checkout(cart).await, 404, "NOCART");
    assert_eq!(alice.cart(cart).await.unwrap().lines.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_login_is_off_unless_asked_and_never_reaches_a_shop_account() {
    let stack = shop(false).await;
    let client = browser(&stack);
    assert_refused(client.sign_in("alice").await, 403, "DEMO_LOGIN_OFF");
    let modes: Value = crate::common::get(&client, "/login").await.json().unwrap();
    assert_eq!(
        modes,
        json!({"demo": false, "shop_login": true, "shop_login_url": "https://shop.test/sign-in"})
    );

    let stack = shop(true).await;
    let shopper = browser(&stack);
    let signed = shopper
        .sign_in_with_token(&hs256(&claims("u-9")))
        .await
        .unwrap();
    assert_eq!(signed.user.username, "u-9-shop");
    // The demo login takes any other name, and refuses the shop account's in any case.
    browser(&stack).sign_in("visitor").await.unwrap();
    assert_refused(
        browser(&stack).sign_in("U-9-SHOP").await,
        403,
        "SHOP_ACCOUNT",
    );
}
