//! Verifying a JSON Web Token per `auth.jwt`: the key from a secret, a PEM file or the identity
//! provider's key set, then the claims (`exp`, `nbf`, `iss`, `aud`, the user and roles).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::jwks::{Jwks, KeySource};
use super::{claim, AuthError, Identity, SetupError};
use crate::config::{JwtConfig, Plan};

/// Where the signature key comes from.
enum Keys {
    /// One key from `secret` or `public_key_file`.
    Fixed(DecodingKey),
    /// The identity provider's key set, chosen by the token's `kid`.
    Provider(Arc<Jwks>),
}

/// JSON Web Token verification per `auth.jwt`.
pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
    /// Accepted algorithm names, to refuse others (and `none`) with a precise reason.
    algorithm_names: Vec<String>,
    user_claim: String,
    roles_claim: String,
    leeway: u64,
    /// `auth.jwt.issuer`: the `iss` claim must be this very string.
    issuer: Option<String>,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig, plan: &Plan) -> Result<Self, SetupError> {
        let algorithms: Vec<Algorithm> = config
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<Algorithm>()
                    .map_err(|_| SetupError::Algorithms(format!("\"{name}\" is not supported")))
            })
            .collect::<Result<_, _>>()?;
        if algorithms.is_empty() {
            return Err(SetupError::Algorithms("empty".into()));
        }
        let source = match (&config.jwks_url, config.discovery, &config.issuer) {
            (Some(url), _, _) => Some(KeySource::Url(url.clone())),
            (None, true, Some(issuer)) => Some(KeySource::Discovery {
                issuer: issuer.clone(),
            }),
            (None, true, None) => {
                return Err(SetupError::Jwks("discovery needs auth.jwt.issuer".into()))
            }
            (None, false, _) => None,
        };
        let keys = match source {
            Some(source) => {
                if algorithms.iter().any(|a| family(*a) == "hmac") {
                    return Err(SetupError::Algorithms(
                        "HS* algorithms cannot be used with a key set from an identity provider"
                            .into(),
                    ));
                }
                let refresh = Duration::from_secs(config.jwks_refresh_s.max(10));
                let extra_roots = match &config.ca_file {
                    Some(file) => crate::config::read_ca_certificates(&plan.resolve_path(file))
                        .map_err(SetupError::CaFile)?,
                    None => Vec::new(),
                };
                Keys::Provider(Arc::new(
                    Jwks::new(source, algorithms.clone(), refresh, &extra_roots)
                        .map_err(SetupError::Jwks)?,
                ))
            }
            None => Keys::Fixed(fixed_key(config, plan, &algorithms)?),
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // Times are checked by `times` below, not by the library: it takes any u64 (whose sums
        // then overflow) and calls a malformed `exp` missing.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier {
            keys,
            validation,
            algorithm_names: config.algorithms.clone(),
            user_claim: config.user_claim.clone(),
            roles_claim: config.roles_claim.clone(),
            // `check` allows an hour; bounded here too, so that sums of times cannot overflow.
            leeway: config.leeway_seconds.min(MAX_NUMERIC_DATE),
            issuer: config.issuer.clone(),
        })
    }

    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        match &self.keys {
            Keys::Provider(jwks) => Some(jwks),
            Keys::Fixed(_) => None,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        // Read the algorithm first so that `none` and unlisted algorithms get their own reason.
        let algorithm = header_algorithm(token).ok_or(AuthError::Malformed)?;
        if !self.algorithm_names.contains(&algorithm) {
            return Err(AuthError::Algorithm(algorithm));
        }
        match &self.keys {
            Keys::Fixed(key) => self.check(token, key, &self.validation, &algorithm),
            Keys::Provider(jwks) => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
                let kid = header.kid.as_deref();
                let cached = match jwks.get(kid) {
                    Some(cached) => cached,
                    None => {
                        // A key published since the last fetch (rotation), or garbage: one
                        // rate-limited fetch decides.
                        jwks.refresh_for_unknown_kid().await;
                        jwks.get(kid).ok_or_else(|| match kid {
                            Some(kid) => AuthError::UnknownKey(kid.to_owned()),
                            None => AuthError::NoKeyId,
                        })?
                    }
                };
                if !cached.algorithms.contains(&header.alg) {
                    return Err(AuthError::KeyMismatch {
                        alg: algorithm,
                        kid: kid.unwrap_or_default().to_owned(),
                    });
                }
                let mut validation = self.validation.clone();
                validation.algorithms = vec![header.alg];
                self.check(token, &cached.key, &validation, &algorithm)
            }
        }
    }

    fn check(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
        algorithm: &str,
    ) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Algorithm(algorithm.to_owned())
                }
                ErrorKind::InvalidIssuer => AuthError::Issuer,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::Issuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::Audience,
                ErrorKind::InvalidClaimFormat(claim) if claim == "iss" => AuthError::Issuer,
                ErrorKind::InvalidClaimFormat(claim) if claim == "aud" => AuthError::Audience,
                _ => AuthError::Malformed,
            },
        )?;
        let claims = data.claims;
        let exp = self.times(&claims)?;
        // The library takes an `iss` array that holds the issuer; RFC 7519 makes it one string.
        if let Some(issuer) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == issuer => {}
                _ => return Err(AuthError::Issuer),
            }
        }
        let user = match claim(&claims, &self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(AuthError::NoUser(self.user_claim.clone())),
        };
        let roles = match claim(&claims, &self.roles_claim) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            user: Some(user),
            roles,
            claims,
            // Both bounded: the sum cannot overflow, and the clock's milliseconds neither.
            expires_at: Some(exp + self.leeway),
        })
    }

    /// `exp` (required), `nbf` and `iat` as dates within [`MAX_NUMERIC_DATE`], `exp` + leeway
    /// not past and `nbf` − leeway not ahead. Returns `exp`.
    fn times(&self, claims: &Map<String, Value>) -> Result<u64, AuthError> {
        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::Malformed)?;
        let nbf = numeric_date(claims, "nbf")?;
        numeric_date(claims, "iat")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if exp + self.leeway < now {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(AuthError::NotYetValid);
        }
        Ok(exp)
    }
}

/// 9999-12-31T23:59:59Z: the latest time a token may name. Later values are no real dates, and
/// bounding them keeps every sum and product of token times far from overflowing.
pub(super) const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

const NUMERIC_DATE: &str = "expected seconds since 1970 up to year 9999";

/// A NumericDate claim (RFC 7519 §2: seconds since the epoch, possibly with a fraction), in
/// whole seconds; `None` when absent. Any other type, a negative number or a time past
/// [`MAX_NUMERIC_DATE`] makes the token invalid.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = match value {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(whole), _) => Some(whole),
            (None, Some(real)) if real.is_finite() && real >= 0.0 => {
                // Compared as floats first: `as` saturates, so a huge float cannot wrap.
                (real <= MAX_NUMERIC_DATE as f64).then(|| real.floor() as u64)
            }
            _ => None,
        },
        _ => None,
    };
    match seconds {
        Some(s) if s <= MAX_NUMERIC_DATE => Ok(Some(s)),
        _ => Err(AuthError::InvalidClaim(name, NUMERIC_DATE)),
    }
}

/// The one key of `secret` or `public_key_file`.
fn fixed_key(
    config: &JwtConfig,
    plan: &Plan,
    algorithms: &[Algorithm],
) -> Result<DecodingKey, SetupError> {
    let families: std::collections::BTreeSet<&str> =
        algorithms.iter().map(|a| family(*a)).collect();
    let family =
        match families.iter().collect::<Vec<_>>().as_slice() {
            [one] => **one,
            _ => return Err(SetupError::Algorithms(
                "one key cannot serve HMAC, RSA, EC and EdDSA algorithms together: keep one family"
                    .into(),
            )),
        };
    if family == "hmac" {
        let secret = config
            .secret
            .as_ref()
            .ok_or_else(|| SetupError::Algorithms("HS* algorithms need auth.jwt.secret".into()))?;
        return Ok(DecodingKey::from_secret(secret.expose().as_bytes()));
    }
    if family == "other" {
        return Err(SetupError::Algorithms(
            "only HS*, RS*, PS*, ES* and EdDSA algorithms are supported".into(),
        ));
    }
    let file = config.public_key_file.as_deref().ok_or_else(|| {
        SetupError::Algorithms(
            "RS*/PS*/ES*/EdDSA algorithms need auth.jwt.public_key_file, jwks_url or discovery"
                .into(),
        )
    })?;
    let path = plan.resolve_path(file);
    let pem = std::fs::read(&path).map_err(|source| SetupError::KeyFile {
        path: path.display().to_string(),
        source,
    })?;
    let (parsed, kind) = match family {
        "rsa" => (DecodingKey::from_rsa_pem(&pem), "RSA"),
        "ec" => (DecodingKey::from_ec_pem(&pem), "EC"),
        _ => (DecodingKey::from_ed_pem(&pem), "Ed25519"),
    };
    parsed.map_err(|e| SetupError::Key {
        path: path.display().to_string(),
        kind,
        reason: e.to_string(),
    })
}

/// `hmac`, `rsa`, `ec` or `ed`: algorithms of one family share a key type.
fn family(algorithm: Algorithm) -> &'static str {
    use Algorithm::*;
    match algorithm {
        HS256 | HS384 | HS512 => "hmac",
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "rsa",
        ES256 | ES384 => "ec",
        EdDSA => "ed",
        _ => "other",
    }
}

/// The `alg` of a token's header, without verifying anything.
fn header_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::auth::Authenticator;

    const SECRET: &str = "unit-test-secret-0123456789abcdef";
    const ISSUER: &str = "https://id.example";

    fn authenticator() -> Authenticator {
        let text = format!(
            "instance_id: a\nkafka: {{bootstrap_servers: 'k:9092'}}\ninbound: [{{channel: c, topic: t}}]\nauth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: {SECRET}, issuer: \"{ISSUER}\", leeway_seconds: 30}}\n"
        );
        let plan = crate::config::load_str(&text, "bridge.yaml", Path::new("."), |_| None)
            .expect("valid config");
        Authenticator::from_plan(&plan).expect("verifier")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(changes: &[(&str, Value)]) -> String {
        let mut claims = json!({"sub": "u", "iss": ISSUER, "exp": now() + 600});
        for (name, value) in changes {
            claims[name] = value.clone();
        }
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn verify(changes: &[(&str, Value)]) -> Result<Identity, AuthError> {
        let auth = authenticator();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(auth.authenticate(Some(token(changes))))
    }

    #[test]
    fn times_that_overflow_a_clock_are_invalid_claims() {
        let invalid_exp = Err(AuthError::InvalidClaim("exp", NUMERIC_DATE));
        for exp in [
            json!(1u64 << 63),
            json!(1e19),
            json!(u64::MAX),
            json!(1u64 << 62),
        ] {
            assert_eq!(verify(&[("exp", exp.clone())]), invalid_exp, "{exp}");
        }
        assert_eq!(verify(&[("exp", json!("later"))]), invalid_exp);
        assert_eq!(verify(&[("exp", json!(-1))]), invalid_exp);
        assert_eq!(
            verify(&[("iat", json!(1e300))]),
            Err(AuthError::InvalidClaim("iat", NUMERIC_DATE))
        );
        assert_eq!(
            verify(&[("iat", json!({}))]),
            Err(AuthError::InvalidClaim("iat", NUMERIC_DATE))
        );
    }

    #[test]
    fn the_issuer_is_one_string_equal_to_the_configured_one() {
        assert!(verify(&[]).is_ok());
        for iss in [
            json!(["https://evil.example", ISSUER]),
            json!([ISSUER]),
            json!(1),
            json!("https://evil.example"),
        ] {
            assert_eq!(
                verify(&[("iss", iss.clone())]),
                Err(AuthError::Issuer),
                "{iss}"
            );
        }
    }

    #[test]
    fn a_fractional_exp_is_an_expiry_with_the_leeway() {
        let exp = now() + 100;
        let identity = verify(&[("exp", json!(exp as f64 + 0.75))]).unwrap();
        assert_eq!(identity.expires_at, Some(exp + 30));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a signed token's times say, verification answers (never panics), and an
        /// accepted token's expiry is a real date the session clock can hold.
        #[test]
        fn any_time_claims_are_answered(
            exp in prop_oneof![any::<u64>().prop_map(|n| json!(n)), any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
                (0u64..MAX_NUMERIC_DATE + 10).prop_map(|n| json!(n)), Just(json!(null)), Just(json!("x"))],
            nbf in proptest::option::of(prop_oneof![any::<u64>().prop_map(|n| json!(n)), any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f))]),
        ) {
            let mut changes = vec![("exp", exp)];
            if let Some(nbf) = nbf {
                changes.push(("nbf", nbf));
            }
            if let Ok(identity) = verify(&changes) {
                let at = identity.expires_at.expect("an accepted token has an expiry");
                prop_assert!(at <= MAX_NUMERIC_DATE + 30);
                prop_assert!(at >= now());
            }
        }
    }
}
