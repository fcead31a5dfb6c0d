//! The serving side: accept connections, decode frames, run each request on
//! its own task (so blocking queries do not stall the connection), and write
//! answers back in whatever order they finish.
//!
//! Everything a peer can make us hold is bounded: connections (accepting
//! pauses at the limit), requests in flight per connection (reading pauses
//! at the limit, so a flood only slows its own connection), frame size, and
//! idle time (a connection with nothing in flight and nothing received for
//! `idle_timeout` is closed). An accept error (out of file descriptors,
//! say) backs off and is logged at most once a second, with a count.

use crate::{Frame, MAX_FRAME_BYTES, Request, Response, RpcError, codec};
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Who is calling, as far as the transport can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket address.
    pub addr: SocketAddr,
    /// What the peer proved about itself.
    pub identity: PeerIdentity,
}

/// What a peer proved about itself at connection time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// Nothing: plain TCP.
    Anonymous,
    /// A certificate from the cluster's CA naming a server.
    Server { name: String },
    /// A certificate from the cluster's CA naming a client.
    Client { name: String },
}

impl PeerInfo {
    /// A peer on plain TCP.
    pub fn anonymous(addr: SocketAddr) -> PeerInfo {
        PeerInfo {
            addr,
            identity: PeerIdentity::Anonymous,
        }
    }
}

/// Answers requests. Implemented by the server.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request from `peer`. May wait (blocking queries).
    fn handle(&self, request: Request, peer: &PeerInfo) -> impl Future<Output = Result<Response, RpcError>> + Send;
}

/// Limits of the serving side.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Connections open at once; accepting waits while at the limit.
    pub max_connections: usize,
    /// Requests handled at once on one connection; reading waits.
    pub max_in_flight_per_connection: usize,
    /// A connection with nothing in flight that receives nothing for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// Mutual TLS: every peer must present a certificate from the CA,
    /// and its [`PeerIdentity`] comes from it. `None`: plain TCP.
    pub tls: Option<crate::RpcTls>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 16_384,
            max_in_flight_per_connection: 512,
            idle_timeout: Duration::from_secs(600),
            tls: None,
        }
    }
}

pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Serves connections from `listener` with the default limits until the
/// task is dropped.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) {
    serve_with(listener, handler, ServeConfig::default()).await
}

/// Serves connections from `listener` with `config`'s limits until the
/// task is dropped.
pub async fn serve_with<H: Handler>(listener: TcpListener, handler: Arc<H>, config: ServeConfig) {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let config = Arc::new(config);
    let mut errors = AcceptErrors::default();
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, addr)) => {
                errors.reset();
                let handler = Arc::clone(&handler);
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%addr, %error, "set nodelay");
                    }
                    let served = match &config.tls {
                        None => serve_connection(stream, PeerInfo::anonymous(addr), handler, &config).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok((stream, identity)) => {
                                serve_connection(stream, PeerInfo { addr, identity }, handler, &config).await
                            }
                            Err(error) => {
                                tracing::info!(%addr, %error, "rpc peer refused: TLS");
                                return;
                            }
                        },
                    };
                    if let Err(error) = served {
                        tracing::debug!(%addr, %error, "rpc connection closed");
                    }
                });
            }
            Err(error) => {
                drop(permit);
                let pause = errors.record(&error, tokio::time::Instant::now());
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Accept failures in a row: how long to pause, and when to log.
#[derive(Debug, Default)]
struct AcceptErrors {
    in_a_row: u32,
    unlogged: u64,
    last_log: Option<tokio::time::Instant>,
}

impl AcceptErrors {
    fn reset(&mut self) {
        self.in_a_row = 0;
    }

    /// Counts one failure; logs at most once a second; returns the pause
    /// before the next accept (5 ms doubling up to 1 s).
    fn record(&mut self, error: &std::io::Error, now: tokio::time::Instant) -> Duration {
        self.unlogged += 1;
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            tracing::warn!(%error, failures = self.unlogged, "rpc accept failed; backing off");
            self.unlogged = 0;
            self.last_log = Some(now);
        }
        let pause = Duration::from_millis(5) * (1u32 << self.in_a_row.min(8));
        self.in_a_row = self.in_a_row.saturating_add(1);
        pause.min(Duration::from_secs(1))
    }
}

/// Serves one connection (plain or TLS) until the peer closes it, it
/// breaks, or it stays idle for the configured time.
pub(crate) async fn serve_connection<S, H>(
    stream: S,
    peer: PeerInfo,
    handler: Arc<H>,
    config: &ServeConfig,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read_half, codec());
    let mut writer = FramedWrite::new(write_half, codec());
    let in_flight_limit = config.max_in_flight_per_connection.max(1);
    let (answer_tx, mut answer_rx) = mpsc::channel::<bytes::Bytes>(in_flight_limit);
    let write_task = tokio::spawn(async move {
        while let Some(frame) = answer_rx.recv().await {
            if writer.send(frame).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(in_flight_limit));
    let peer = Arc::new(peer);
    let mut idle_deadline = tokio::time::Instant::now() + config.idle_timeout;
    loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let next = loop {
            tokio::select! {
                next = reader.next() => break Some(next),
                _ = tokio::time::sleep_until(idle_deadline) => {
                    // Idle means nothing received and nothing in flight (the
                    // permit we hold is for the next frame) for the timeout.
                    if in_flight.available_permits() + 1 == in_flight_limit {
                        break None;
                    }
                    idle_deadline = tokio::time::Instant::now() + config.idle_timeout;
                }
            }
        };
        let Some(Some(frame)) = next else {
            if next.is_none() {
                tracing::debug!(addr = %peer.addr, "closing idle rpc connection");
            }
            break;
        };
        idle_deadline = tokio::time::Instant::now() + config.idle_timeout;
        let frame = frame?;
        let decoded: Result<Frame<Request>, _> = codec::decode(&frame);
        let answer_tx = answer_tx.clone();
        let handler = Arc::clone(&handler);
        let peer = Arc::clone(&peer);
        tokio::spawn(async move {
            let _permit = permit;
            let (id, result) = match decoded {
                Ok(Frame { id, body }) => (id, handler.handle(body, &peer).await),
                Err(error) => (0, Err(RpcError::BadRequest(format!("undecodable frame: {error}")))),
            };
            let answer = Frame::<Result<Response, RpcError>> { id, body: result };
            match codec::encode(&answer) {
                Ok(bytes) => {
                    let _ = answer_tx.send(bytes.into()).await;
                }
                Err(error) => tracing::error!(%error, "rpc answer could not be encoded"),
            }
        });
    }
    drop(answer_tx);
    let _ = write_task.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_and_log_rarely() {
        let mut errors = AcceptErrors::default();
        let start = tokio::time::Instant::now();
        let error = std::io::Error::other("too many open files");
        let pauses: Vec<Duration> = (0..12).map(|_| errors.record(&error, start)).collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert_eq!(*pauses.last().expect("pauses"), Duration::from_secs(1));
        // Twelve failures within the same instant: only the first is logged,
        // the rest are counted for the next log line.
        assert_eq!(errors.unlogged, 11);
        errors.record(&error, start + Duration::from_secs(1));
        assert_eq!(errors.unlogged, 0);
        errors.reset();
        assert_eq!(errors.record(&error, start), Duration::from_millis(5));
    }
}
