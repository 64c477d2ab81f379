//! The WebSocket listener: one task per client connection moves binary messages
//! between the socket and the actor; the actor decides everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::actor::{ClientWriter, Event, Metrics, client_channel, write_loop};

/// Largest WebSocket message accepted (the session protocol's frames are far smaller;
/// the core closes oversize ones with a reason before this limit is reached).
const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Time for the HTTP upgrade (a connection that dribbles its request is dropped).
pub(crate) const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connection ids come from `next`, shared with the WebTransport listener.
pub(crate) async fn serve(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    next: Arc<AtomicU64>,
    client_queue: usize,
) {
    nodenet::accept_each(listener, move |stream, peer| {
        let conn = next.fetch_add(1, Ordering::Relaxed);
        let events = events.clone();
        let metrics = metrics.clone();
        async move {
            let config =
                WebSocketConfig::default().max_message_size(Some(MAX_WS_MESSAGE)).max_frame_size(Some(MAX_WS_MESSAGE));
            let upgrade = tokio_tungstenite::accept_async_with_config(stream, Some(config));
            let ws = match tokio::time::timeout(UPGRADE_TIMEOUT, upgrade).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "websocket handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.ws_upgrade_timeouts.inc();
                    tracing::debug!(%peer, "websocket upgrade timed out");
                    return;
                }
            };
            metrics.ws_connections.inc();
            let (sink, mut source) = ws.split();
            let (tx, rx, kill) = client_channel(client_queue);
            if events.send(Event::Connected { conn, tx }).await.is_err() {
                return;
            }
            let writer = tokio::spawn(write_loop(WsWriter(sink), kill.clone(), rx));
            loop {
                let msg = tokio::select! {
                    biased;
                    _ = kill.killed() => break,
                    msg = source.next() => match msg {
                        Some(m) => m,
                        None => break,
                    },
                };
                match msg {
                    Ok(Message::Binary(b)) => {
                        if events.send(Event::Message { conn, data: b.to_vec() }).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    Ok(Message::Close(_)) => break,
                    Ok(_) => {
                        // text frames are not part of the protocol
                        metrics.ws_bad_messages.inc();
                        let _ = events.send(Event::Message { conn, data: vec![0xff; 1] }).await;
                        break;
                    }
                    Err(e) => {
                        metrics.ws_bad_messages.inc();
                        tracing::debug!(%peer, error = %e, "websocket error");
                        break;
                    }
                }
            }
            let _ = events.send(Event::Disconnected { conn }).await;
            // let a queued close frame go out
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
        }
    })
    .await;
}

/// A WebSocket connection's sink: a session message is one binary message.
struct WsWriter<S>(S);

impl<S> ClientWriter for WsWriter<S>
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    async fn send(&mut self, message: Vec<u8>) -> bool {
        self.0.send(Message::Binary(message.into())).await.is_ok()
    }

    async fn close(mut self, code: u16, reason: String) {
        let reason: String = reason.chars().take(120).collect();
        let frame = CloseFrame { code: CloseCode::from(4000 + code), reason: reason.into() };
        let close = self.0.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
    }
}
