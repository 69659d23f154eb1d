//! Where `auth.jwt` finds its verification keys: a secret, a PEM file, a JWKS URL or OpenID
//! Connect discovery — exactly one, and one that fits the algorithms.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::rules::Semantic;
use super::JwtConfig;

/// Shortest `jwks_refresh_s`: the same floor as the refresh an unknown `kid` may cause.
const MIN_JWKS_REFRESH_S: u64 = 10;
/// Longest `jwks_refresh_s`: a day; providers publish a new key well before using it.
const MAX_JWKS_REFRESH_S: u64 = 86_400;
/// Longest `leeway_seconds`: an hour of clock skew is already a broken clock; far larger values
/// would overflow the token library's own `now + leeway`.
const MAX_LEEWAY_S: u64 = 3_600;

impl Semantic<'_> {
    /// `hmac` / `public_key`: whether the algorithms include those families.
    pub(super) fn check_jwt_keys(&mut self, jwt: &JwtConfig, hmac: bool, public_key: bool) {
        if jwt.leeway_seconds > MAX_LEEWAY_S {
            self.error(
                "auth.jwt.leeway_seconds",
                format!(
                    "must be at most {MAX_LEEWAY_S} seconds, found {}",
                    jwt.leeway_seconds
                ),
            );
        }
        let from_idp = jwt.jwks_url.is_some() || jwt.discovery;
        if let Some(url) = &jwt.jwks_url {
            if let Err(reason) = http_url(url) {
                self.error("auth.jwt.jwks_url", reason);
            }
            if jwt.discovery {
                self.error(
                    "auth.jwt.discovery",
                    "cannot be combined with jwks_url: discovery finds the key set's URL itself",
                );
            }
        }
        if jwt.discovery {
            match &jwt.issuer {
                None => self.error(
                    "auth.jwt.discovery",
                    "needs auth.jwt.issuer: the provider's configuration is read from {issuer}/.well-known/openid-configuration",
                ),
                Some(issuer) => {
                    if let Err(reason) = http_url(issuer) {
                        self.error("auth.jwt.issuer", reason);
                    }
                }
            }
        }
        if let Some(file) = &jwt.ca_file {
            if from_idp {
                self.ca_certificates_file("auth.jwt.ca_file", file);
            } else {
                self.error(
                    "auth.jwt.ca_file",
                    "needs jwks_url or discovery: it is trusted for fetching the identity provider's keys over HTTPS, and with secret or public_key_file nothing is fetched",
                );
            }
        }
        if from_idp {
            if hmac {
                self.error(
                    "auth.jwt.algorithms",
                    "HS* algorithms cannot be used with a key set from an identity provider: list RS*, PS*, ES* or EdDSA",
                );
            }
            if jwt.public_key_file.is_some() {
                self.error(
                    "auth.jwt.public_key_file",
                    "cannot be combined with jwks_url or discovery: keys come from the identity provider",
                );
            }
            if !(MIN_JWKS_REFRESH_S..=MAX_JWKS_REFRESH_S).contains(&jwt.jwks_refresh_s) {
                self.error(
                    "auth.jwt.jwks_refresh_s",
                    format!(
                        "must be between {MIN_JWKS_REFRESH_S} and {MAX_JWKS_REFRESH_S} seconds, found {}",
                        jwt.jwks_refresh_s
                    ),
                );
            }
            return;
        }
        if public_key {
            match &jwt.public_key_file {
                None => self.error(
                    "auth.jwt.public_key_file",
                    "missing (required for RS*/PS*/ES*/EdDSA algorithms, unless jwks_url or discovery is set)",
                ),
                Some(file) => self.readable_file("auth.jwt.public_key_file", file),
            }
        }
    }
}

/// The certificates of a PEM file (`-----BEGIN CERTIFICATE-----` blocks; other blocks, such as
/// a key, are skipped): at least one, each of them well-formed.
pub(crate) fn read_ca_certificates(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let file = || path.to_owned();
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        file: file(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CaFileError::NotPem {
            file: file(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(CaFileError::Empty { file: file() });
    }
    // Parsed as trust anchors exactly as the HTTPS client will (a PEM block of garbage
    // base64 decodes fine and only fails here).
    let mut store = tokio_rustls::rustls::RootCertStore::empty();
    for (i, der) in certificates.iter().enumerate() {
        if let Err(source) = store.add(der.clone()) {
            return Err(CaFileError::Unusable {
                file: file(),
                number: i + 1,
                of: certificates.len(),
                source,
            });
        }
    }
    Ok(certificates)
}

/// Why a PEM file of CA certificates (`auth.jwt.ca_file`) is not usable.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM file of certificates: {source}", file.display())]
    NotPem {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "{}: no certificate in it (expected PEM blocks `-----BEGIN CERTIFICATE-----`)",
        file.display()
    )]
    Empty { file: PathBuf },
    #[error(
        "{}: certificate {number} of {of} is not usable as a CA certificate: {source}",
        file.display()
    )]
    Unusable {
        file: PathBuf,
        number: usize,
        of: usize,
        source: tokio_rustls::rustls::Error,
    },
}

/// An `http://` or `https://` URL with a host.
pub(super) fn http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, found \"{url}\""))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("expected a URL with a host, found \"{url}\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(jwt: &str) -> Vec<String> {
        let text = format!(
            "instance_id: a\nkafka: {{bootstrap_servers: 'k:9092'}}\ninbound: [{{channel: c, topic: t}}]\nauth:\n  mode: jwt\n  jwt:\n{jwt}"
        );
        match crate::config::load_str(&text, "bridge.yaml", Path::new("."), |_| None) {
            Ok(_) => Vec::new(),
            Err(found) => found.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_key_set_url_or_discovery_is_enough() {
        assert_eq!(
            errors("    algorithms: [RS256, ES256, EdDSA]\n    jwks_url: https://id.example.com/certs\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            errors("    algorithms: [RS256]\n    issuer: https://id.example.com/realms/shop\n    discovery: true\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn key_set_mistakes_point_at_their_lines() {
        assert_eq!(
            errors("    algorithms: [HS256]\n    secret: 0123456789abcdef0123456789abcdef\n    jwks_url: id.example.com/certs\n    jwks_refresh_s: 5\n"),
            [
                "bridge.yaml:7: auth.jwt.algorithms: HS* algorithms cannot be used with a key set from an identity provider: list RS*, PS*, ES* or EdDSA",
                "bridge.yaml:9: auth.jwt.jwks_url: expected an http:// or https:// URL, found \"id.example.com/certs\"",
                "bridge.yaml:10: auth.jwt.jwks_refresh_s: must be between 10 and 86400 seconds, found 5",
            ]
        );
        assert_eq!(
            errors("    algorithms: [RS256]\n    discovery: true\n"),
            ["bridge.yaml:8: auth.jwt.discovery: needs auth.jwt.issuer: the provider's configuration is read from {issuer}/.well-known/openid-configuration"]
        );
        assert_eq!(
            errors("    algorithms: [RS256]\n    issuer: https://id.example.com\n    discovery: true\n    jwks_url: https://id.example.com/keys\n"),
            ["bridge.yaml:9: auth.jwt.discovery: cannot be combined with jwks_url: discovery finds the key set's URL itself"]
        );
        assert_eq!(
            errors("    algorithms: [HS256]\n    secret: 0123456789abcdef0123456789abcdef\n    leeway_seconds: 100000\n"),
            ["bridge.yaml:9: auth.jwt.leeway_seconds: must be at most 3600 seconds, found 100000"]
        );
    }
    /// A file of the test's own with `text` in it, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("kwb-ca-{}-{name}", uuid::Uuid::new_v4().simple()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn ca_file_must_hold_pem_certificates_and_goes_with_a_key_set() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()]).unwrap();
        // Two CAs, with a key block between them (skipped).
        let good = TempFile::new(
            "good.pem",
            &format!(
                "{}{}{}",
                ca.cert.pem(),
                ca.signing_key.serialize_pem(),
                other.cert.pem()
            ),
        );
        let with = |file: &str| {
            errors(&format!(
                "    algorithms: [RS256]\n    jwks_url: https://id.example.com/certs\n    ca_file: {file}\n"
            ))
        };
        assert_eq!(with(good.path()), Vec::<String>::new());
        assert_eq!(
            crate::config::read_ca_certificates(&good.0).unwrap().len(),
            2
        );
        assert_eq!(
            with("/nope/ca.pem"),
            ["bridge.yaml:9: auth.jwt.ca_file: cannot read /nope/ca.pem: No such file or directory (os error 2)"]
        );
        let key_only = TempFile::new("key.pem", &ca.signing_key.serialize_pem());
        assert_eq!(
            with(key_only.path()),
            [format!("bridge.yaml:9: auth.jwt.ca_file: {}: no certificate in it (expected PEM blocks `-----BEGIN CERTIFICATE-----`)", key_only.path())]
        );
        let not_x509 = TempFile::new(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        let found = with(not_x509.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!("bridge.yaml:9: auth.jwt.ca_file: {}: certificate 1 of 1 is not usable as a CA certificate: ", not_x509.path())),
            "{found:?}"
        );
        let broken = TempFile::new(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        );
        let found = with(broken.path());
        assert!(
            found.len() == 1 && found[0].contains("not a PEM file of certificates"),
            "{found:?}"
        );
        assert_eq!(
            errors(&format!(
                "    algorithms: [HS256]\n    secret: 0123456789abcdef0123456789abcdef\n    ca_file: {}\n",
                good.path()
            )),
            ["bridge.yaml:9: auth.jwt.ca_file: needs jwks_url or discovery: it is trusted for fetching the identity provider's keys over HTTPS, and with secret or public_key_file nothing is fetched"]
        );
    }
}
