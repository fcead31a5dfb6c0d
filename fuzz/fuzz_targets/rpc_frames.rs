//! Fuzzes the RPC port of a dev server over a real TCP connection, through
//! the same `rpc::serve_with` and `server::RpcService` the agent runs. The
//! first byte picks how the rest is sent:
//! - 0: as raw bytes (the length-prefixed framing itself);
//! - 1: as the body of one well-framed frame (the frame and request
//!   decoder, then whatever handler the request reaches);
//! - 2–5: as the payload of a well-formed Raft message of kind append,
//!   vote, snapshot or elect (openraft's message decoding, the sender and
//!   membership checks);
//! - otherwise: as the payload of a server-to-server call (the peer-call
//!   decoder and its handlers).
//!
//! A panic anywhere in the server (libFuzzer's hook aborts the process) or
//! a server that stops answering is a crash.
#![no_main]

#[path = "agent.rs"]
mod agent;

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The wire's frame: `rpc`'s own is private, and this one encodes the same
/// way (structs are positional arrays).
#[derive(Serialize)]
struct Frame<T> {
    id: u64,
    body: T,
}

fn framed(body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn request_frame(request: rpc::Request) -> Vec<u8> {
    framed(&rpc::encode(&Frame { id: 7, body: request }).expect("a request encodes"))
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let wire = match mode {
        0 => rest.to_vec(),
        1 => framed(rest),
        2..=5 => {
            let kind = ["append", "vote", "snapshot", "elect"][usize::from(mode - 2)];
            request_frame(rpc::Request::Raft(rpc::RaftRequest {
                kind: kind.to_string(),
                payload: rest.to_vec(),
            }))
        }
        _ => request_frame(rpc::Request::Server(rpc::ServerMessage { payload: rest.to_vec() })),
    };
    let agent = agent::agent();
    agent.runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(agent.rpc_addr)
            .await
            .expect("the RPC port accepts");
        if stream.write_all(&wire).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        // Answers come back or the server closes the connection; a request
        // that blocks (a blocking query) is abandoned.
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        // The server still serves a fresh connection.
        let probe = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(agent.rpc_addr)).await;
        assert!(matches!(probe, Ok(Ok(_))), "the RPC port stopped accepting");
    });
});
