//! `GET /v1/event/stream`: Nomad's event stream as newline-delimited JSON.
//!
//! Each line is a frame `{"Index":N,"Events":[…]}` holding the events of
//! one Raft index that pass the request's filters, or `{}` as a heartbeat
//! every [`HEARTBEAT`]. The stream starts with the server's buffered
//! frames from `index` on (from the oldest held when `index` is older, as
//! Nomad) and follows live frames. A subscriber that falls too far behind
//! gets an error frame and the stream ends; it never holds up the state
//! machine.
//!
//! Filters: `topic=Topic:key` (repeatable; `*` for every topic or key; a
//! key matches the event's key or one of its filter keys, such as an
//! allocation's job), and `namespace` (`default` when absent, `*` for
//! every namespace; events outside namespaces always pass).
//!
//! ACLs, as Nomad: `*` and the ACL topics need a management token, the
//! job-scoped topics `read-job` in the namespace asked for, `Node` a
//! `node:read` rule; and every namespaced event is checked against the
//! token, so `namespace=*` shows only what the token may read.

use crate::AppState;
use crate::error::ApiError;
use acl::Level;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use server::{Caller, Event, EventFrame, EventPayload, Topic};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often an idle stream sends `{}`.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);
/// At most this many `topic` parameters (and keys) per request.
const MAX_TOPICS: usize = 64;

/// What a subscription asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subscription {
    /// Topic → keys; `None` for every topic.
    pub topics: Option<BTreeMap<Topic, Vec<String>>>,
    /// `None` for every namespace.
    pub namespace: Option<String>,
    pub index: u64,
}

/// Reads the query string (`topic` may repeat).
pub(crate) fn parse_subscription(query: Option<&str>) -> Result<Subscription, ApiError> {
    let mut topics: BTreeMap<Topic, Vec<String>> = BTreeMap::new();
    let mut all_topics = false;
    let mut n_topics = 0;
    let mut namespace = Some(types::DEFAULT_NAMESPACE.to_string());
    let mut index = 0;
    for pair in query.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = crate::authz::percent_decode(value);
        match name {
            "topic" => {
                n_topics += 1;
                if n_topics > MAX_TOPICS {
                    return Err(ApiError::BadRequest(format!("at most {MAX_TOPICS} topic parameters")));
                }
                let (topic, key) = value.split_once(':').unwrap_or((value.as_str(), "*"));
                let key = if key.is_empty() { "*" } else { key };
                if topic == "*" {
                    if key != "*" {
                        return Err(ApiError::BadRequest(format!(
                            "invalid topic {value:?}: the all-topics wildcard takes no key"
                        )));
                    }
                    all_topics = true;
                    continue;
                }
                let Some(topic) = Topic::parse(topic) else {
                    let known: Vec<&str> = Topic::ALL.iter().map(|topic| topic.as_str()).collect();
                    return Err(ApiError::BadRequest(format!(
                        "unknown event topic {topic:?} (Drover produces {} and *)",
                        known.join(", ")
                    )));
                };
                topics.entry(topic).or_default().push(key.to_string());
            }
            "namespace" => {
                namespace = match value.as_str() {
                    "" => Some(types::DEFAULT_NAMESPACE.to_string()),
                    "*" => None,
                    other => Some(other.to_string()),
                }
            }
            "index" => {
                index = value
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid index {value:?}")))?;
            }
            // Token and region ride along on many clients' requests.
            "region" | "stale" => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unsupported parameter {other:?} for the event stream (topic, namespace, index)"
                )));
            }
        }
    }
    let topics = if all_topics || topics.is_empty() {
        None
    } else {
        Some(topics)
    };
    Ok(Subscription {
        topics,
        namespace,
        index,
    })
}

/// Refuses a subscription the caller may not make.
fn authorize(caller: &Caller, subscription: &Subscription) -> Result<(), ApiError> {
    let acl = &caller.acl;
    if acl.is_management() {
        return Ok(());
    }
    let denied = || Err(ApiError::PermissionDenied("event stream topic".to_string()));
    let Some(topics) = &subscription.topics else {
        return denied();
    };
    for topic in topics.keys() {
        let allowed = match topic {
            Topic::Job | Topic::Evaluation | Topic::Allocation | Topic::Deployment => match &subscription.namespace {
                Some(namespace) => acl.allow_namespace_op(namespace, "read-job"),
                None => acl.allow_in_some_namespace("read-job"),
            },
            Topic::Node => acl.allow_node(Level::Read),
            Topic::AclToken | Topic::AclPolicy | Topic::AclRole => false,
        };
        if !allowed {
            return denied();
        }
    }
    Ok(())
}

/// Whether `event` passes the subscription's filters and the caller's
/// rights.
fn selects(subscription: &Subscription, caller: &Caller, event: &Event) -> bool {
    if let Some(topics) = &subscription.topics {
        let Some(keys) = topics.get(&event.topic()) else {
            return false;
        };
        if !keys.iter().any(|key| event.matches_key(key)) {
            return false;
        }
    }
    let namespace = event.namespace();
    if namespace.is_empty() {
        return true;
    }
    if subscription
        .namespace
        .as_deref()
        .is_some_and(|wanted| wanted != namespace)
    {
        return false;
    }
    caller.acl.allow_namespace_op(namespace, "read-job")
}

/// The event in Nomad's JSON shape.
pub(crate) fn event_json(event: &Event) -> Value {
    let payload = match &event.payload {
        EventPayload::Job(job) => json!({ "Job": jobspec::job_to_api(job) }),
        EventPayload::Evaluation(eval) => json!({ "Evaluation": api_types::Evaluation::from(&**eval) }),
        // Without the job, as Nomad.
        EventPayload::Allocation(alloc) => json!({ "Allocation": api_types::allocation(alloc, None) }),
        EventPayload::Deployment(deployment) => json!({ "Deployment": api_types::Deployment::from(&**deployment) }),
        EventPayload::Node(node) => json!({ "Node": api_types::node(node) }),
        EventPayload::AclToken(token) => json!({ "ACLToken": api_types::acl::AclToken::from_domain(token, false) }),
        EventPayload::AclPolicy(policy) => json!({ "ACLPolicy": api_types::acl::AclPolicy::from(&**policy) }),
        EventPayload::AclRole(role) => json!({ "ACLRole": api_types::acl::AclRole::from(&**role) }),
    };
    json!({
        "Topic": event.topic().as_str(),
        "Type": event.event_type,
        "Key": event.key(),
        "Namespace": event.namespace(),
        "FilterKeys": event.filter_keys(),
        "Index": event.index,
        "Payload": payload,
    })
}

/// One NDJSON line for the frame's selected events; `None` if none pass.
fn frame_line(subscription: &Subscription, caller: &Caller, frame: &EventFrame) -> Option<Bytes> {
    let events: Vec<Value> = frame
        .events
        .iter()
        .filter(|event| selects(subscription, caller, event))
        .map(event_json)
        .collect();
    if events.is_empty() {
        return None;
    }
    let mut line = serde_json::to_vec(&json!({ "Index": frame.index, "Events": events })).ok()?;
    line.push(b'\n');
    Some(Bytes::from(line))
}

struct StreamState {
    subscription: Subscription,
    caller: Caller,
    backlog: std::vec::IntoIter<Arc<EventFrame>>,
    live: broadcast::Receiver<Arc<EventFrame>>,
    /// Frames at or below this were sent from the backlog.
    sent_up_to: u64,
    done: bool,
}

/// The NDJSON body: the backlog's selected frames, then live ones, a `{}`
/// heartbeat after [`HEARTBEAT`] of silence, and an error line (then the
/// end) when the subscriber lagged.
fn ndjson_frames(
    subscription: Subscription,
    caller: Caller,
    backlog: Vec<Arc<EventFrame>>,
    live: broadcast::Receiver<Arc<EventFrame>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let start = StreamState {
        subscription,
        caller,
        backlog: backlog.into_iter(),
        live,
        sent_up_to: 0,
        done: false,
    };
    futures::stream::unfold(start, |mut stream| async move {
        if stream.done {
            return None;
        }
        for frame in stream.backlog.by_ref() {
            stream.sent_up_to = frame.index;
            if let Some(line) = frame_line(&stream.subscription, &stream.caller, &frame) {
                return Some((Ok::<Bytes, std::io::Error>(line), stream));
            }
        }
        loop {
            match tokio::time::timeout(HEARTBEAT, stream.live.recv()).await {
                Err(_) => return Some((Ok(Bytes::from_static(b"{}\n")), stream)),
                Ok(Ok(frame)) => {
                    if frame.index <= stream.sent_up_to {
                        continue;
                    }
                    if let Some(line) = frame_line(&stream.subscription, &stream.caller, &frame) {
                        return Some((Ok(line), stream));
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    // Too slow: end the stream rather than skip events
                    // silently; the client resumes from its last index.
                    stream.done = true;
                    let error = json!({ "Error": format!("subscription closed: the client fell {missed} frames behind; resume from the last index seen") });
                    let mut line = serde_json::to_vec(&error).unwrap_or_default();
                    line.push(b'\n');
                    return Some((Ok(Bytes::from(line)), stream));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    })
}

/// `GET /v1/event/stream`.
pub async fn stream(
    State(state): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let subscription = parse_subscription(query.as_deref())?;
    authorize(&caller, &subscription)?;
    let (backlog, live) = state.server.events().subscribe(subscription.index);
    let frames = ndjson_frames(subscription, caller, backlog, live);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(frames.boxed()),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_frame(index: u64) -> EventFrame {
        EventFrame {
            index,
            events: vec![Event {
                event_type: "NodeRegistration",
                index,
                payload: EventPayload::Node(Arc::new(types::Node::default())),
            }],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_heartbeats_and_a_lagging_one_ends_with_an_error() {
        let broker = server::EventBroker::new(server::EventBufferConfig {
            max_frames: 10,
            max_events: 100,
            subscriber_lag: 2,
        });
        broker.publish(vec![node_frame(3)]);
        let subscription = parse_subscription(Some("topic=Node")).expect("parses");
        let (backlog, live) = broker.subscribe(0);
        let mut lines = Box::pin(ndjson_frames(subscription, Caller::unrestricted(), backlog, live));
        let first = lines.next().await.expect("backlog frame").expect("ok");
        let frame: Value = serde_json::from_slice(&first).expect("json");
        assert_eq!(
            (frame["Index"].as_u64(), frame["Events"][0]["Type"].as_str()),
            (Some(3), Some("NodeRegistration"))
        );
        // Nothing happens: a heartbeat after ten (paused) seconds.
        let started = tokio::time::Instant::now();
        assert_eq!(&lines.next().await.expect("heartbeat").expect("ok")[..], b"{}\n");
        assert!(started.elapsed() >= HEARTBEAT);
        // Five frames while the reader is away: it lagged, and is told.
        broker.publish((4..=8).map(node_frame).collect());
        let error: Value = serde_json::from_slice(&lines.next().await.expect("error line").expect("ok")).expect("json");
        assert!(
            error["Error"].as_str().is_some_and(|text| text.contains("behind")),
            "{error}"
        );
        assert!(lines.next().await.is_none(), "the stream ends");
    }

    #[test]
    fn subscriptions_parse_topics_keys_namespace_and_index() {
        let all = parse_subscription(None).expect("defaults");
        assert_eq!(all.topics, None);
        assert_eq!(all.namespace.as_deref(), Some("default"));
        let some = parse_subscription(Some(
            "topic=Job:web&topic=Node&topic=Allocation%3Aweb&namespace=*&index=7",
        ))
        .expect("parses");
        let topics = some.topics.expect("topics");
        assert_eq!(topics[&Topic::Job], vec!["web".to_string()]);
        assert_eq!(topics[&Topic::Node], vec!["*".to_string()]);
        assert_eq!(topics[&Topic::Allocation], vec!["web".to_string()]);
        assert_eq!((some.namespace, some.index), (None, 7));
        assert!(parse_subscription(Some("topic=*")).expect("star").topics.is_none());
        for bad in ["topic=Nope", "index=x", "topic=*:key", "color=blue"] {
            assert!(
                matches!(parse_subscription(Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
        let many = vec!["topic=Job"; MAX_TOPICS + 1].join("&");
        assert!(matches!(parse_subscription(Some(&many)), Err(ApiError::BadRequest(_))));
    }
}
