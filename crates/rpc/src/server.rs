//! The serving side: accept connections, decode frames, run each request on
//! its own task (so blocking queries do not stall the connection), and write
//! answers back in whatever order they finish.

use crate::{Frame, MAX_FRAME_BYTES, Request, Response, RpcError};
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Answers requests. Implemented by the server.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request. May wait (blocking queries).
    fn handle(&self, request: Request) -> impl Future<Output = Result<Response, RpcError>> + Send;
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Serves connections from `listener` until the task is dropped.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, handler).await {
                        tracing::debug!(%peer, %error, "rpc connection closed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "rpc accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn serve_connection<H: Handler>(stream: TcpStream, handler: Arc<H>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read_half, write_half) = stream.into_split();
    let mut reader = FramedRead::new(read_half, codec());
    let mut writer = FramedWrite::new(write_half, codec());
    let (answer_tx, mut answer_rx) = mpsc::channel::<bytes::Bytes>(256);
    let write_task = tokio::spawn(async move {
        while let Some(frame) = answer_rx.recv().await {
            if writer.send(frame).await.is_err() {
                break;
            }
        }
    });
    while let Some(frame) = reader.next().await {
        let frame = frame?;
        let decoded: Result<Frame<Request>, _> = serde_json::from_slice(&frame);
        let answer_tx = answer_tx.clone();
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let (id, result) = match decoded {
                Ok(Frame { id, body }) => (id, handler.handle(body).await),
                Err(error) => (0, Err(RpcError::BadRequest(format!("undecodable frame: {error}")))),
            };
            let answer = Frame::<Result<Response, RpcError>> { id, body: result };
            match serde_json::to_vec(&answer) {
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
