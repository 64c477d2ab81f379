//! The anonymous publishing service of the demo: a mixnet client that accepts texts
//! and answers each through the sender's SURBs. It sees a sender tag, never an
//! address, so it cannot tell who published what, nor reach a reader except by reply.

use std::sync::{Arc, Mutex};

use mixnet_core::address::Recipient;
use serde::Serialize;

use mixnet_client::{Client, ClientConfig, ClientError, ClientEvent};

/// Largest text kept; longer posts are refused (and told so).
pub const MAX_POST_BYTES: usize = 16 * 1024;
/// Posts kept in memory (oldest dropped first).
const MAX_POSTS: usize = 1000;

/// A published text.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    /// Sequence number, from 1.
    pub id: u64,
    /// The text.
    pub text: String,
    /// When it arrived (Unix ms).
    pub at_ms: u64,
}

/// What the service answers, as JSON through the sender's SURBs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The running service.
pub struct PublishService {
    /// Where to send texts.
    pub address: Recipient,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PublishService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PublishService {
    /// Connects a client with `config` and starts serving.
    pub async fn start(config: ClientConfig) -> Result<Self, ClientError> {
        let mut client = Client::connect(config).await?;
        let address = client.address;
        let posts = Arc::new(Mutex::new(Vec::new()));
        let shared = posts.clone();
        let task = tokio::spawn(async move {
            let mut next_id = 1u64;
            while let Some(event) = client.next_event().await {
                let ClientEvent::Received(m) = event else { continue };
                let receipt = match std::str::from_utf8(&m.data) {
                    _ if m.data.len() > MAX_POST_BYTES => {
                        Receipt::refused(format!("posts are limited to {MAX_POST_BYTES} bytes"))
                    }
                    Err(_) => Receipt::refused("a post must be UTF-8 text".into()),
                    Ok(text) => {
                        let post = Post { id: next_id, text: text.to_owned(), at_ms: nodenet::unix_ms() };
                        next_id += 1;
                        let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
                        if p.len() == MAX_POSTS {
                            p.remove(0);
                        }
                        p.push(post.clone());
                        tracing::info!(id = post.id, bytes = m.data.len(), "published");
                        Receipt { ok: true, id: Some(post.id), bytes: Some(m.data.len()), error: None }
                    }
                };
                match m.sender_tag {
                    Some(tag) => {
                        let body = serde_json::to_vec(&receipt).unwrap_or_default();
                        if let Err(e) = client.reply(tag, body).await {
                            tracing::warn!(error = %e, "cannot answer the publisher");
                        }
                    }
                    None => tracing::info!("a post came without reply SURBs; no receipt sent"),
                }
            }
        });
        Ok(Self { address, posts, task })
    }

    /// The posts so far, oldest first.
    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Receipt {
    fn refused(error: String) -> Self {
        Self { ok: false, id: None, bytes: None, error: Some(error) }
    }
}
