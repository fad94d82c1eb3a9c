//! KV-cache events over ZMQ in vLLM's wire format, for routers that route by which
//! replica holds a prompt's blocks (`vllm-router --policy kv_aware`, llm-d's precise
//! prefix-cache scorer).
//!
//! As vLLM's `ZmqEventPublisher`: every engine step that changed the prefix cache is one
//! `KVEventBatch`, sent on a PUB socket as three frames `[topic, sequence number (8 bytes,
//! big-endian, from 0), msgpack payload]`. The payload is `[ts, [event, ...],
//! data_parallel_rank]`, each event a map tagged by `type`: `BlockStored` (`block_hashes`,
//! `parent_block_hash`, `token_ids`, `block_size`, `lora_id`, `medium`, `lora_name`) or
//! `BlockRemoved` (`block_hashes`, `medium`) — the shapes `vllm-router` 0.1.17 accepts (it
//! refuses a map for the batch and an array for an event).
//! Block hashes are corvid's chained 64-bit hashes: consumers match blocks by them (and by
//! the token ids carried with each stored block), never recompute them. With a replay
//! endpoint, a ROUTER socket answers a request frame holding a start sequence number
//! (8 bytes, big-endian) with every buffered batch from there, `[seq, payload]` each, then
//! `[-1, empty]`: a subscriber that saw a gap in the sequence numbers catches up.

use bytes::Bytes;
use corvid_engine::kv::KvCacheEvent;
use corvid_engine::StatsSink;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

/// Batches kept for replay (vLLM's `buffer_steps` default).
const REPLAY_BATCHES: usize = 10_000;

/// Batches waiting for the publisher task before new ones are dropped (with a warning):
/// the engine thread never waits for the network.
const QUEUE_BATCHES: usize = 100_000;

/// The storage tier named in each event. vLLM names its own KV cache `GPU`, and routers
/// read that as "a request sent here reuses these blocks directly"; corvid's pool is that
/// tier, though it lives in RAM.
const MEDIUM: &str = "GPU";

/// Where and under which topic to publish (`--kv-events-endpoint`, vLLM's
/// `KVEventsConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEventsOptions {
    /// PUB endpoint to bind, e.g. `tcp://*:5557`.
    pub endpoint: String,
    /// ROUTER endpoint answering replay requests, if any (e.g. `tcp://*:5558`).
    pub replay_endpoint: Option<String>,
    /// Topic frame of every message (llm-d's convention: `kv@<pod>@<model>`).
    pub topic: String,
}

/// Hands each step's events to the publishing task; the engine's stats sink for them.
pub struct KvEventPublisher {
    tx: mpsc::Sender<Vec<KvCacheEvent>>,
}

impl KvEventPublisher {
    /// Binds the sockets and starts publishing (on the current tokio runtime).
    pub async fn start(options: &KvEventsOptions) -> anyhow::Result<Arc<Self>> {
        let mut publisher = zeromq::PubSocket::new();
        publisher
            .bind(&bind_address(&options.endpoint))
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", options.endpoint))?;
        // Batches are kept only for a replay socket to hand out.
        let buffer = match &options.replay_endpoint {
            Some(endpoint) => {
                let mut replay = zeromq::RouterSocket::new();
                replay
                    .bind(&bind_address(endpoint))
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot bind {endpoint}: {e}"))?;
                let buffer = Arc::new(Mutex::new(VecDeque::with_capacity(REPLAY_BATCHES)));
                tokio::spawn(serve_replays(replay, Arc::clone(&buffer)));
                Some(buffer)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let topic = Bytes::from(options.topic.clone().into_bytes());
        tokio::spawn(publish(publisher, rx, topic, buffer));
        tracing::info!(endpoint = %options.endpoint, replay = ?options.replay_endpoint, topic = %options.topic, "publishing KV-cache events");
        Ok(Arc::new(Self { tx }))
    }
}

impl StatsSink for KvEventPublisher {
    fn on_step(&self, _: &corvid_engine::IterationStats) {}

    fn on_request_finished(&self, _: &corvid_engine::RequestStats) {}

    fn on_kv_events(&self, events: &[KvCacheEvent]) {
        if self.tx.try_send(events.to_vec()).is_err() {
            tracing::warn!("KV-cache event queue full or closed: a batch was dropped");
        }
    }
}

/// The last [`REPLAY_BATCHES`] batches, `(sequence number, payload)`, for the replay socket.
type ReplayBuffer = Arc<Mutex<VecDeque<(u64, Bytes)>>>;

/// `tcp://*:5557` as the socket library binds it (every interface).
fn bind_address(endpoint: &str) -> String {
    endpoint.replacen("://*:", "://0.0.0.0:", 1)
}

/// Sends every batch in order, numbering them from 0, and keeps the last
/// [`REPLAY_BATCHES`] in `buffer` when there is one (a replay socket serves it).
async fn publish(
    mut socket: zeromq::PubSocket,
    mut rx: mpsc::Receiver<Vec<KvCacheEvent>>,
    topic: Bytes,
    buffer: Option<ReplayBuffer>,
) {
    let mut seq: u64 = 0;
    while let Some(events) = rx.recv().await {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let payload = Bytes::from(encode_batch(ts, &events));
        let frames = vec![
            topic.clone(),
            Bytes::copy_from_slice(&seq.to_be_bytes()),
            payload.clone(),
        ];
        let message = ZmqMessage::try_from(frames).expect("three frames");
        if let Err(e) = socket.send(message).await {
            tracing::warn!(error = %e, "cannot publish a KV-cache event batch");
        }
        if let Some(buffer) = &buffer {
            let mut buffer = buffer.lock().expect("replay buffer lock");
            if buffer.len() == REPLAY_BATCHES {
                buffer.pop_front();
            }
            buffer.push_back((seq, payload));
        }
        seq += 1;
    }
}

/// Answers replay requests `[identity, empty, start]` with the buffered batches from
/// `start` on, then the end marker.
async fn serve_replays(mut socket: zeromq::RouterSocket, buffer: ReplayBuffer) {
    const END: [u8; 8] = (-1i64).to_be_bytes();
    loop {
        let request = match socket.recv().await {
            Ok(m) => m.into_vec(),
            Err(e) => {
                tracing::warn!(error = %e, "KV-cache event replay socket failed");
                return;
            }
        };
        let [identity, _, start] = request.as_slice() else {
            tracing::warn!(
                frames = request.len(),
                "malformed KV-cache event replay request"
            );
            continue;
        };
        let Ok(start) = <[u8; 8]>::try_from(start.as_ref()).map(u64::from_be_bytes) else {
            tracing::warn!("KV-cache event replay request without an 8-byte start");
            continue;
        };
        let batches: Vec<(u64, Bytes)> = buffer
            .lock()
            .expect("replay buffer lock")
            .iter()
            .filter(|(seq, _)| *seq >= start)
            .cloned()
            .collect();
        let replies = batches
            .into_iter()
            .map(|(seq, payload)| (Bytes::copy_from_slice(&seq.to_be_bytes()), payload))
            .chain([(Bytes::from_static(&END), Bytes::new())]);
        for (seq, payload) in replies {
            let frames = vec![identity.clone(), Bytes::new(), seq, payload];
            let message = ZmqMessage::try_from(frames).expect("four frames");
            if let Err(e) = socket.send(message).await {
                tracing::warn!(error = %e, "cannot answer a KV-cache event replay request");
                break;
            }
        }
    }
}

/// One batch in vLLM's msgpack form (see the module docs).
fn encode_batch(ts: f64, events: &[KvCacheEvent]) -> Vec<u8> {
    use rmp::encode::*;
    let mut out = Vec::new();
    let write = |out: &mut Vec<u8>| -> Result<(), Box<dyn std::error::Error>> {
        write_array_len(out, 3)?;
        write_f64(out, ts)?;
        write_array_len(out, events.len() as u32)?;
        for e in events {
            match e {
                KvCacheEvent::BlockStored {
                    block_hashes,
                    parent_block_hash,
                    token_ids,
                    block_size,
                } => {
                    write_map_len(out, 8)?;
                    write_str(out, "type")?;
                    write_str(out, "BlockStored")?;
                    write_hashes(out, block_hashes)?;
                    write_str(out, "parent_block_hash")?;
                    match parent_block_hash {
                        Some(h) => drop(write_uint(out, *h)?),
                        None => write_nil(out)?,
                    }
                    write_str(out, "token_ids")?;
                    write_array_len(out, token_ids.len() as u32)?;
                    for &t in token_ids {
                        write_uint(out, u64::from(t))?;
                    }
                    write_str(out, "block_size")?;
                    write_uint(out, *block_size as u64)?;
                    // corvid serves no LoRA adapters.
                    write_str(out, "lora_id")?;
                    write_nil(out)?;
                    write_str(out, "medium")?;
                    write_str(out, MEDIUM)?;
                    write_str(out, "lora_name")?;
                    write_nil(out)?;
                }
                KvCacheEvent::BlockRemoved { block_hashes } => {
                    write_map_len(out, 3)?;
                    write_str(out, "type")?;
                    write_str(out, "BlockRemoved")?;
                    write_hashes(out, block_hashes)?;
                    write_str(out, "medium")?;
                    write_str(out, MEDIUM)?;
                }
            }
        }
        // data_parallel_rank: one engine per replica.
        write_uint(out, 0)?;
        Ok(())
    };
    write(&mut out).expect("writing msgpack to a Vec cannot fail");
    out
}

/// The `block_hashes` field: msgpack unsigned integers.
fn write_hashes(out: &mut Vec<u8>, hashes: &[u64]) -> Result<(), Box<dyn std::error::Error>> {
    rmp::encode::write_str(out, "block_hashes")?;
    rmp::encode::write_array_len(out, hashes.len() as u32)?;
    for &h in hashes {
        rmp::encode::write_uint(out, h)?;
    }
    Ok(())
}
