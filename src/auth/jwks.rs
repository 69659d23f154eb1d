//! The identity provider's signing keys: a JSON Web Key Set fetched from `jwks_url` (or from
//! the `jwks_uri` OpenID Connect discovery names), cached by `kid`, refreshed periodically and
//! on an unknown `kid` (at most once every [`UNKNOWN_KID_INTERVAL`]). A failed fetch keeps the
//! cached keys: an outage of the provider does not lock users out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use prometheus::{IntCounter, IntGauge};
use rustls_pki_types::CertificateDer;

/// Least time between two fetches caused by tokens with an unknown `kid`, so garbage tokens
/// cannot make the bridge hammer the provider.
pub(crate) const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// How long one fetch may take (connect, request, body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set or discovery document read; real ones are a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Retry interval while the last fetch failed (shorter than a typical `jwks_refresh_s`).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Url(String),
    /// `{issuer}/.well-known/openid-configuration` → `jwks_uri`.
    Discovery {
        issuer: String,
    },
}

/// Counters the fetches report to, resolved once (from [`crate::metrics::Metrics`]).
#[derive(Clone)]
pub struct JwksMetrics {
    pub fetched: IntCounter,
    pub failed: IntCounter,
    pub keys: IntGauge,
}

/// One usable key of the set.
pub(super) struct CachedKey {
    pub(super) key: DecodingKey,
    /// The algorithms this key may verify: the JWK's `alg` when it names one, else every
    /// accepted algorithm of its key type (and curve).
    pub(super) algorithms: Vec<Algorithm>,
}

/// What `/readyz` shows about the key set.
#[derive(Debug, Clone)]
pub struct JwksStatus {
    pub keys: usize,
    pub url: Option<String>,
    /// The last fetch's error, when it failed.
    pub last_error: Option<String>,
    /// When keys were last fetched successfully, seconds since the epoch.
    pub last_success: Option<u64>,
}

pub struct Jwks {
    source: KeySource,
    /// Algorithms accepted by the config; keys for nothing else are left out.
    accepted: Vec<Algorithm>,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, std::sync::Arc<CachedKey>>>,
    /// The `jwks_uri` found by discovery (found again after a failure).
    jwks_uri: Mutex<Option<String>>,
    /// One fetch at a time; a caller that waited behind another fetch uses its result.
    fetching: tokio::sync::Mutex<()>,
    /// Milliseconds since the epoch of the last fetch attempt (0: never).
    last_attempt_ms: AtomicU64,
    status: Mutex<JwksStatus>,
    pub(super) refresh_every: Duration,
    metrics: std::sync::OnceLock<JwksMetrics>,
}

impl Jwks {
    /// `extra_roots`: CA certificates trusted for HTTPS besides the Mozilla roots
    /// (`auth.jwt.ca_file`).
    pub fn new(
        source: KeySource,
        accepted: Vec<Algorithm>,
        refresh_every: Duration,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3));
        for der in extra_roots {
            let certificate = reqwest::Certificate::from_der(der)
                .map_err(|e| format!("auth.jwt.ca_file: {}", error_chain(&e)))?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
        let url = match &source {
            KeySource::Url(url) => Some(url.clone()),
            KeySource::Discovery { .. } => None,
        };
        Ok(Jwks {
            source,
            accepted,
            client,
            keys: RwLock::new(HashMap::new()),
            jwks_uri: Mutex::new(url.clone()),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt_ms: AtomicU64::new(0),
            status: Mutex::new(JwksStatus {
                keys: 0,
                url,
                last_error: None,
                last_success: None,
            }),
            refresh_every,
            metrics: std::sync::OnceLock::new(),
        })
    }

    /// Where fetches are counted (set once, when the bridge starts).
    pub fn set_metrics(&self, metrics: JwksMetrics) {
        let _ = self.metrics.set(metrics);
    }

    pub fn status(&self) -> JwksStatus {
        self.status.lock().clone()
    }

    /// The cached key `kid`; with no `kid`, the only key when the set holds exactly one.
    pub(super) fn get(&self, kid: Option<&str>) -> Option<std::sync::Arc<CachedKey>> {
        let keys = self.keys.read();
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    /// A refresh because a token named a `kid` not cached: done unless one happened less than
    /// [`UNKNOWN_KID_INTERVAL`] ago. Returns whether the keys were fetched.
    pub(super) async fn refresh_for_unknown_kid(&self) -> bool {
        let attempted = self.last_attempt_ms.load(Ordering::Acquire);
        if attempted != 0 && now_ms().saturating_sub(attempted) < millis(UNKNOWN_KID_INTERVAL) {
            return false;
        }
        let _one = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        let attempted = self.last_attempt_ms.load(Ordering::Acquire);
        if attempted != 0 && now_ms().saturating_sub(attempted) < millis(UNKNOWN_KID_INTERVAL) {
            return true;
        }
        self.fetch_locked().await.is_ok()
    }

    /// Fetches the key set now (the periodic refresh and the first fetch at start).
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        self.fetch_locked().await
    }

    /// Fetches the keys now, then every `refresh_every` (every 10 s while the last fetch
    /// failed) until `stop`.
    pub async fn run(&self, stop: tokio_util::sync::CancellationToken) {
        let _ = self.refresh().await;
        loop {
            let failing = self.status.lock().last_error.is_some();
            let wait = if failing {
                RETRY_AFTER_FAILURE.min(self.refresh_every)
            } else {
                self.refresh_every
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let _ = self.refresh().await;
        }
    }

    async fn fetch_locked(&self) -> Result<usize, String> {
        self.last_attempt_ms.store(now_ms(), Ordering::Release);
        let result = self.fetch().await;
        let mut status = self.status.lock();
        match &result {
            Ok((count, url)) => {
                status.keys = *count;
                status.url = Some(url.clone());
                status.last_error = None;
                status.last_success = Some(now_ms() / 1000);
                if let Some(m) = self.metrics.get() {
                    m.fetched.inc();
                    m.keys.set(*count as i64);
                }
                tracing::debug!(keys = count, url = %url, "signing keys fetched");
            }
            Err(e) => {
                status.last_error = Some(e.clone());
                if let Some(m) = self.metrics.get() {
                    m.failed.inc();
                }
                tracing::warn!(error = %e, cached_keys = status.keys, "fetching the identity provider's signing keys failed; cached keys stay in use");
                // Discovery is done again next time: the provider may have moved its keys.
                if matches!(self.source, KeySource::Discovery { .. }) {
                    *self.jwks_uri.lock() = None;
                }
            }
        }
        result.map(|(count, _)| count)
    }

    async fn fetch(&self) -> Result<(usize, String), String> {
        let known = self.jwks_uri.lock().clone();
        let url = match (known, &self.source) {
            (Some(url), _) => url,
            (None, KeySource::Discovery { issuer }) => {
                let url = self.discover(issuer).await?;
                *self.jwks_uri.lock() = Some(url.clone());
                url
            }
            (None, KeySource::Url(url)) => url.clone(),
        };
        let body = self.get_json(&url).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not a JSON Web Key Set: {e}"))?;
        let keys = usable_keys(&set, &self.accepted);
        if keys.is_empty() {
            return Err(format!(
                "{url}: no key in the set is usable (a signing key with a `kid` for one of the accepted algorithms)"
            ));
        }
        let count = keys.len();
        *self.keys.write() = keys;
        Ok((count, url))
    }

    async fn discover(&self, issuer: &str) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get_json(&url).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not a JSON document: {e}"))?;
        let published = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or("");
        if published.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(format!(
                "{url}: the provider names its issuer \"{published}\", not \"{issuer}\" (auth.jwt.issuer)"
            ));
        }
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("{url}: no `jwks_uri` in the provider's configuration"))
    }

    async fn get_json(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}{}", error_chain(&e), certificate_hint(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(format!("{url}: larger than {MAX_BODY_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The keys of a set that can verify one of the accepted algorithms, by `kid`. Keys for
/// encryption (`use: enc`), symmetric keys and keys without a `kid` are left out (unless the set
/// has a single key).
fn usable_keys(set: &JwkSet, accepted: &[Algorithm]) -> HashMap<String, std::sync::Arc<CachedKey>> {
    let single = set.keys.len() == 1;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let algorithms: Vec<Algorithm> = key_algorithms(jwk)
            .into_iter()
            .filter(|a| accepted.contains(a))
            .collect();
        if algorithms.is_empty() {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let kid = match &jwk.common.key_id {
            Some(kid) => kid.clone(),
            None if single => String::new(),
            None => continue,
        };
        keys.insert(kid, std::sync::Arc::new(CachedKey { key, algorithms }));
    }
    keys
}

/// The algorithms a JWK may verify: its `alg` when given, else those of its key type.
fn key_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![EdDSA],
            _ => vec![],
        },
        // Symmetric keys in a published set would make the set's readers able to sign.
        _ => vec![],
    };
    match jwk.common.key_algorithm {
        None => by_type,
        Some(named) => match key_algorithm(named) {
            Some(alg) if by_type.contains(&alg) => vec![alg],
            _ => vec![],
        },
    }
}

fn key_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match named {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        _ => return None,
    })
}

/// An error with its causes (reqwest's own message omits the underlying I/O error).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What to do when the provider's certificate is not trusted: most often a private CA.
fn certificate_hint(error: &(dyn std::error::Error + 'static)) -> &'static str {
    use tokio_rustls::rustls::{CertificateError, Error as TlsError};
    let mut current = Some(error);
    while let Some(e) = current {
        // rustls' error travels inside io::Errors (two, nested, from reqwest's connector),
        // whose `source` skips what they wrap.
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(TlsError::InvalidCertificate(reason)) = inner.downcast_ref::<TlsError>() {
            return match reason {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    " (the provider's certificate is not signed by a trusted CA: when a private CA signed it, list that CA's certificate in auth.jwt.ca_file)"
                }
                _ => "",
            };
        }
        current = e.source();
    }
    ""
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> JwkSet {
        serde_json::from_value(json).unwrap()
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn keys_are_kept_by_kid_and_type() {
        let accepted = vec![Algorithm::RS256, Algorithm::ES256];
        let keys = usable_keys(
            &set(serde_json::json!({"keys": [
                {"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": N, "e": "AQAB"},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
                {"kty": "RSA", "kid": "ps", "alg": "PS512", "n": N, "e": "AQAB"},
                {"kty": "RSA", "n": N, "e": "AQAB"},
                {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}
            ]})),
            &accepted,
        );
        assert_eq!(keys.len(), 1, "only `a` is usable");
        assert_eq!(keys["a"].algorithms, vec![Algorithm::RS256]);
    }

    /// An HTTPS server whose self-signed certificate nobody trusts: the fetch error says to
    /// list the CA in `auth.jwt.ca_file`; with that certificate in `extra_roots` it connects.
    #[tokio::test]
    async fn an_untrusted_certificate_points_at_ca_file_and_trusting_it_connects() {
        let dir =
            std::env::temp_dir().join(format!("kwb-jwks-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        let acceptor =
            crate::server::tls_acceptor(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/keys",
            listener.local_addr().unwrap().port()
        );
        let server = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let body = r#"{"keys":[]}"#;
                        let _ = tls
                            .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let source = KeySource::Url(url.clone());
        let refresh = Duration::from_secs(60);
        let untrusting = Jwks::new(source.clone(), vec![Algorithm::RS256], refresh, &[]).unwrap();
        let error = untrusting.refresh().await.unwrap_err();
        assert!(error.contains("invalid peer certificate: UnknownIssuer (the provider's certificate is not signed by a trusted CA: when a private CA signed it, list that CA's certificate in auth.jwt.ca_file)"), "{error}");
        let roots = crate::config::read_ca_certificates(&dir.join("cert.pem")).unwrap();
        let trusting = Jwks::new(source, vec![Algorithm::RS256], refresh, &roots).unwrap();
        // Past TLS: the (empty) key set itself is what is wrong now.
        let error = trusting.refresh().await.unwrap_err();
        assert_eq!(
            error,
            format!("{url}: no key in the set is usable (a signing key with a `kid` for one of the accepted algorithms)")
        );
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_single_key_without_kid_is_usable() {
        let keys = usable_keys(
            &set(serde_json::json!({"keys": [{"kty": "RSA", "n": N, "e": "AQAB"}]})),
            &[Algorithm::RS256, Algorithm::PS256],
        );
        assert_eq!(
            keys[""].algorithms,
            vec![Algorithm::RS256, Algorithm::PS256]
        );
    }
}
