//! The accept loop behind both listeners: TCP accept, optional TLS (rustls), HTTP/1.1 with
//! upgrades (hyper), and a warp filter turned into a service. Owning the loop (rather than
//! `warp::serve`) lets the caller hand in an already-bound listener (tests bind port 0), add
//! TLS, bound the handshake, and stop accepting on demand.

pub mod http;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A cloneable HTTP service, as `warp::service` makes from a filter.
pub(crate) trait HttpService<B>:
    tower_service::Service<
        ::http::Request<Incoming>,
        Response = ::http::Response<B>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: tower_service::Service<
            ::http::Request<Incoming>,
            Response = ::http::Response<B>,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// A response body hyper can send.
pub(crate) trait ResponseBody:
    hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> ResponseBody for B where
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// Why the certificate chain and key of `server.tls` do not make a TLS acceptor.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or is not PEM.
    #[error("{}: {source}", file.display())]
    Certificates {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no certificate in the file", file.display())]
    NoCertificate { file: PathBuf },
    /// The key file cannot be read or holds no private key.
    #[error("{}: {source}", file.display())]
    Key {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    /// rustls supports no protocol version with its crypto provider (a build problem).
    #[error("{0}")]
    Protocols(tokio_rustls::rustls::Error),
    /// The key does not fit the certificate, or either is unusable.
    #[error("{}: {source}", file.display())]
    Chain {
        file: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
}

/// Loads the certificate chain and key of `server.tls` (paths already resolved).
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|source| TlsError::Certificates {
            file: cert_file.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            file: cert_file.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| TlsError::Key {
        file: key_file.to_owned(),
        source,
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Chain {
            file: cert_file.to_owned(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `service` on `listener` until `stop` is cancelled. Connections already accepted
/// (and upgraded WebSockets) are not affected by `stop`. A connection must finish its TLS
/// handshake and send its request headers within `handshake_timeout`.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    stop: CancellationToken,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service, handshake_timeout).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, service, handshake_timeout).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<T, S, B>(io: T, service: S, handshake_timeout: Duration)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<B>,
    B: ResponseBody,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}
