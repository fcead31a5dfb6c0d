//! The event buffer: the events the state machine's applies produced, kept
//! in a bounded ring for subscribers that resume from an index, and fanned
//! out live over a `tokio::sync::broadcast` channel.
//!
//! Publishing never waits: a subscriber that falls more than the channel's
//! capacity behind sees `Lagged` on its receiver and is expected to drop
//! the subscription (the HTTP stream ends with an error frame), so a slow
//! reader never holds up `apply`. The ring keeps at most `max_frames`
//! frames (one per Raft index that produced events, as Nomad's
//! `event_buffer_size`) and at most `max_events` events in all, dropping
//! the oldest frames first (the newest frame always stays).

use state::Event;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use types::Index;

/// The events of one Raft index.
#[derive(Debug)]
pub struct EventFrame {
    pub index: Index,
    pub events: Vec<Event>,
}

/// How much the buffer keeps.
#[derive(Debug, Clone, Copy)]
pub struct EventBufferConfig {
    /// Frames (Raft indexes) kept for resuming subscribers.
    pub max_frames: usize,
    /// Events kept across those frames.
    pub max_events: usize,
    /// Frames a live subscriber may fall behind before it is dropped.
    pub subscriber_lag: usize,
}

impl Default for EventBufferConfig {
    fn default() -> EventBufferConfig {
        EventBufferConfig {
            max_frames: 100,
            max_events: 10_000,
            subscriber_lag: 1024,
        }
    }
}

struct Ring {
    frames: VecDeque<Arc<EventFrame>>,
    n_events: usize,
}

/// The buffer and the live channel. Cheap to clone.
#[derive(Clone)]
pub struct EventBroker {
    ring: Arc<Mutex<Ring>>,
    live: broadcast::Sender<Arc<EventFrame>>,
    config: EventBufferConfig,
}

impl std::fmt::Debug for EventBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBroker").field("config", &self.config).finish()
    }
}

impl EventBroker {
    pub fn new(config: EventBufferConfig) -> EventBroker {
        let (live, _) = broadcast::channel(config.subscriber_lag.max(1));
        EventBroker {
            ring: Arc::new(Mutex::new(Ring {
                frames: VecDeque::new(),
                n_events: 0,
            })),
            live,
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        match self.ring.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds frames (in index order) to the ring and sends them to live
    /// subscribers. Never blocks on a subscriber.
    pub fn publish(&self, frames: Vec<EventFrame>) {
        if frames.is_empty() {
            return;
        }
        let mut ring = self.lock();
        for frame in frames {
            let frame = Arc::new(frame);
            ring.n_events += frame.events.len();
            ring.frames.push_back(Arc::clone(&frame));
            while ring.frames.len() > 1
                && (ring.frames.len() > self.config.max_frames || ring.n_events > self.config.max_events)
            {
                if let Some(old) = ring.frames.pop_front() {
                    ring.n_events -= old.events.len();
                }
            }
            // Sent under the lock, so a subscriber (which also takes it)
            // sees every frame exactly once: in its backlog or live.
            // An error only means nobody listens.
            let _ = self.live.send(frame);
        }
    }

    /// Frames from `from_index` on that the ring still holds (from the
    /// oldest when `from_index` is older, as Nomad), and a receiver for
    /// every later frame.
    pub fn subscribe(&self, from_index: Index) -> (Vec<Arc<EventFrame>>, broadcast::Receiver<Arc<EventFrame>>) {
        let ring = self.lock();
        let backlog = ring
            .frames
            .iter()
            .filter(|frame| frame.index >= from_index)
            .cloned()
            .collect();
        (backlog, self.live.subscribe())
    }

    /// The oldest index the ring holds, if any.
    pub fn oldest_index(&self) -> Option<Index> {
        self.lock().frames.front().map(|frame| frame.index)
    }

    /// (frames, events) held.
    pub fn len(&self) -> (usize, usize) {
        let ring = self.lock();
        (ring.frames.len(), ring.n_events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::EventPayload;

    fn frame(index: Index, n_events: usize) -> EventFrame {
        let node = Arc::new(types::Node::default());
        EventFrame {
            index,
            events: (0..n_events)
                .map(|_| Event {
                    event_type: "NodeRegistration",
                    index,
                    payload: EventPayload::Node(Arc::clone(&node)),
                })
                .collect(),
        }
    }

    #[test]
    fn ring_is_bounded_by_frames_and_events_and_resumes_from_the_oldest() {
        let broker = EventBroker::new(EventBufferConfig {
            max_frames: 3,
            max_events: 5,
            subscriber_lag: 4,
        });
        broker.publish((1..=5).map(|index| frame(index, 1)).collect());
        assert_eq!(broker.len(), (3, 3));
        assert_eq!(broker.oldest_index(), Some(3));
        // Too old: starts at the oldest held.
        let (backlog, _) = broker.subscribe(1);
        assert_eq!(backlog.iter().map(|f| f.index).collect::<Vec<_>>(), vec![3, 4, 5]);
        let (backlog, _) = broker.subscribe(5);
        assert_eq!(backlog.len(), 1);
        // Event bound: a frame of 4 pushes out older ones, and a frame
        // larger than the bound still stays (the newest always does).
        broker.publish(vec![frame(6, 4)]);
        assert_eq!(broker.len(), (2, 5));
        broker.publish(vec![frame(7, 9)]);
        assert_eq!(broker.len(), (1, 9));
    }

    #[test]
    fn a_slow_subscriber_lags_and_publishing_never_waits() {
        let broker = EventBroker::new(EventBufferConfig {
            max_frames: 10,
            max_events: 100,
            subscriber_lag: 2,
        });
        let (_, mut receiver) = broker.subscribe(0);
        broker.publish((1..=5).map(|index| frame(index, 1)).collect());
        assert!(matches!(
            receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
