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
                Keys::Provider(Arc::new(
                    Jwks::new(source, algorithms.clone(), refresh).map_err(SetupError::Jwks)?,
                ))
            }
            None => Keys::Fixed(fixed_key(config, plan, &algorithms)?),
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
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
            leeway: config.leeway_seconds,
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
                _ => AuthError::Malformed,
            },
        )?;
        let claims = data.claims;
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
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| exp + self.leeway);
        Ok(Identity {
            user: Some(user),
            roles,
            claims,
            expires_at,
        })
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
