//! The shop's own login: JSON Web Tokens from the shop's identity provider, verified here and
//! exchanged for a Flash session (`POST /session {"token": "<JWT>"}`).
//!
//! A token is taken when it is:
//! - signed with a key this edge was given, under that key's own algorithm: HS256 with the
//!   shared secret (`--jwt-secret`), RS256 or ES256 with a public key of the JWKS file
//!   (`--jwt-jwks`). Each key's algorithm is fixed when the key is read (the JWK's `alg`, else
//!   its type and curve), so a token cannot choose how it is checked: an RS256 public key is
//!   never tried as an HS256 secret, and `alg: none` names no key at all;
//! - not expired (`exp` is required; 30 s of leeway for clocks that differ), and valid already
//!   (`nbf`, when present);
//! - from the issuer and for the audience this edge was told (`--jwt-issuer`,
//!   `--jwt-audience`: when set, the claim is required and must match);
//! - about someone: `sub`, the shop's id of the shopper, is required.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// Clock skew forgiven on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// A shared secret shorter than this is refused at start (HS256's key is its whole strength).
pub const MIN_SECRET_BYTES: usize = 32;

/// The keys and rules that decide which tokens are the shop's.
pub struct ShopLogin {
    keys: Vec<ShopKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

struct ShopKey {
    /// The JWK's `kid`; a token that names a kid is checked with that key only.
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Who a verified token says the shopper is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopIdentity {
    /// `sub`: the shop's id of the shopper, unique in the shop.
    pub subject: String,
    /// `preferred_username`, else `name`, when the token has one: the name Flash shows.
    pub display_name: Option<String>,
    /// `exp`, Unix seconds: the Flash session made from the token ends by then.
    pub expires_secs: u64,
}

/// Why a token is refused (each is a 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("not a JSON Web Token this edge reads: {0}")]
    Malformed(String),
    #[error("no key of this edge signs {algorithm} tokens{}", kid.as_ref().map(|kid| format!(" with kid {kid:?}")).unwrap_or_default())]
    NoKey {
        algorithm: String,
        kid: Option<String>,
    },
    #[error("{0}")]
    Refused(String),
}

/// What a key could not be read as.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl ShopLogin {
    /// The shop login made of a shared secret, a JWKS, or both; `None` without either (no
    /// shop login on this edge).
    pub fn new(
        secret: Option<&str>,
        jwks: Option<&JwkSet>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Option<ShopLogin>, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError(format!(
                    "the JWT secret is {} bytes; HS256 needs at least {MIN_SECRET_BYTES}",
                    secret.len()
                )));
            }
            keys.push(ShopKey {
                id: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|error| KeyError(format!("the JWT secret: {error}")))?,
            });
        }
        for jwk in jwks.map(|set| set.keys.as_slice()).unwrap_or_default() {
            let id = jwk.common.key_id.clone();
            let name = id.clone().unwrap_or_else(|| "(no kid)".to_owned());
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                return Err(KeyError(format!(
                    "JWK {name} is for encryption, not signatures"
                )));
            }
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(_)) => {
                    Algorithm::ES256
                }
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(ec))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                (alg, _) => {
                    return Err(KeyError(format!(
                        "JWK {name}: only RSA keys for RS256 and P-256 keys for ES256 are taken \
                         (alg {alg:?})"
                    )));
                }
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|error| KeyError(format!("JWK {name}: {error}")))?;
            keys.push(ShopKey { id, algorithm, key });
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(ShopLogin {
            keys,
            issuer,
            audience,
        }))
    }

    /// Verifies `token`; the shopper it names.
    pub fn verify(&self, token: &str) -> Result<ShopIdentity, LoginError> {
        let header =
            decode_header(token).map_err(|error| LoginError::Malformed(error.to_string()))?;
        let candidates: Vec<&ShopKey> = self
            .keys
            .iter()
            .filter(|key| key.algorithm == header.alg)
            .filter(|key| match (&header.kid, &key.id) {
                (Some(wanted), Some(id)) => wanted == id,
                _ => true,
            })
            .collect();
        let mut refused = None;
        for key in &candidates {
            match decode::<Claims>(token, &key.key, &self.validation(key.algorithm)) {
                Ok(data) => {
                    let claims = data.claims;
                    return Ok(ShopIdentity {
                        subject: claims.sub,
                        display_name: claims.preferred_username.or(claims.name),
                        expires_secs: claims.exp,
                    });
                }
                Err(error) => refused = Some(reason(error.kind())),
            }
        }
        Err(refused
            .map(LoginError::Refused)
            .unwrap_or(LoginError::NoKey {
                algorithm: format!("{:?}", header.alg),
                kid: header.kid,
            }))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without an audience of its own, the edge cannot judge one.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// A refusal in words a shop's developer can act on.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired (exp)".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidAudience => "the token is for another audience (aud)".to_owned(),
        ErrorKind::InvalidIssuer => "the token is from another issuer (iss)".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's".to_owned(),
        other => format!("the token cannot be read: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn jwks(json: &str) -> JwkSet {
        serde_json::from_str(json).unwrap()
    }

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn without_a_secret_or_keys_there_is_no_shop_login() {
        assert!(ShopLogin::new(None, None, None, None).unwrap().is_none());
        let empty = jwks(r#"{"keys": []}"#);
        assert!(
            ShopLogin::new(None, Some(&empty), None, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_short_secret_and_keys_it_cannot_pin_are_refused_at_start() {
        assert!(ShopLogin::new(Some("short"), None, None, None).is_err());
        for (what, set) in [
            (
                "an RSA key for RS512",
                format!(r#"{{"keys": [{{"kty":"RSA","kid":"a","alg":"RS512","n":"{RSA_N}","e":"AQAB"}}]}}"#),
            ),
            (
                "an RSA key for encryption",
                format!(r#"{{"keys": [{{"kty":"RSA","kid":"a","use":"enc","n":"{RSA_N}","e":"AQAB"}}]}}"#),
            ),
            (
                "an RS256 alg on an EC key",
                r#"{"keys": [{"kty":"EC","kid":"a","alg":"RS256","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.to_owned(),
            ),
        ] {
            assert!(
                ShopLogin::new(None, Some(&jwks(&set)), None, None).is_err(),
                "{what} was taken"
            );
        }
        let rsa = jwks(&format!(
            r#"{{"keys": [{{"kty":"RSA","kid":"a","n":"{RSA_N}","e":"AQAB"}}]}}"#
        ));
        let login = ShopLogin::new(None, Some(&rsa), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            login.keys[0].algorithm,
            Algorithm::RS256,
            "pinned from its type"
        );
    }
}
