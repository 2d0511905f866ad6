//! The event bus: every action the engine takes is published here, kept in a bounded history for `since`
//! queries, and broadcast to live `/events` subscribers.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::filters::Filters;

/// Past events kept for `since` (dockerd keeps 256: measured with Debian's dockerd 20.10, and
/// moby's `eventsLimit`).
const HISTORY: usize = 256;
/// How far a live subscriber may fall behind before it misses events.
const LIVE_BUFFER: usize = 1024;

/// One event, serialised as Docker's `EventMessage` (with the legacy `status`/`id`/`from` fields that
/// older clients and docker-py still read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Legacy copy of `Action`.
    pub status: String,
    /// Legacy copy of `Actor.ID`.
    pub id: String,
    /// Legacy: the image a container came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<String>,
    /// Object type: `image`, `container`, `network`, `volume`, `daemon`.
    #[serde(rename = "Type")]
    pub typ: Cow<'static, str>,
    /// What happened: `tag`, `untag`, `delete`, `load`, `import`, `save`, …
    #[serde(rename = "Action")]
    pub action: String,
    /// The object and its attributes.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local` (no swarm).
    pub scope: Cow<'static, str>,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an event is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Actor {
    /// Object ID (an image ID, a container ID, …).
    #[serde(rename = "ID")]
    pub id: String,
    /// Name, labels and other details.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// The `prune` event dockerd publishes after a prune of `typ` (container, image, network, builder): no
    /// actor ID, the bytes reclaimed as the `reclaimed` attribute.
    pub(crate) fn pruned(typ: &'static str, reclaimed: u64) -> Event {
        Event::new(
            typ,
            "prune",
            "",
            BTreeMap::from([("reclaimed".to_owned(), reclaimed.to_string())]),
        )
    }

    /// A new event stamped with the current time.
    pub fn new(
        typ: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Event {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Event {
            status: action.to_owned(),
            id: id.to_owned(),
            from: None,
            typ: Cow::Borrowed(typ),
            action: action.to_owned(),
            actor: Actor {
                id: id.to_owned(),
                attributes,
            },
            scope: Cow::Borrowed("local"),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }

    /// Whether this event passes the `/events` filters (type, event/action, image, container, label, scope).
    pub fn matches(&self, filters: &Filters) -> bool {
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            let values = filters.get(key);
            values.is_empty() || values.iter().any(|v| pred(v))
        };
        let attr = |k: &str| self.actor.attributes.get(k).map(String::as_str);
        any("type", &|v| v == self.typ)
            && any("event", &|v| {
                v == self.action || self.action.starts_with(&format!("{v}:"))
            })
            && any("scope", &|v| v == self.scope)
            && any("image", &|v| {
                self.typ == "image"
                    && (self.actor.id == v
                        || self.actor.id.trim_start_matches("sha256:").starts_with(v)
                        || attr("name") == Some(v))
                    || attr("image") == Some(v)
            })
            && any("volume", &|v| self.typ == "volume" && self.actor.id == v)
            && any("container", &|v| {
                self.typ == "container" && (self.actor.id.starts_with(v) || attr("name") == Some(v))
            })
            && filters.labels_match("label", |k| attr(k))
    }
}

/// Publisher and history of events; owned by the engine, read by the API.
pub struct Events {
    history: Mutex<History>,
    live: broadcast::Sender<Arc<Event>>,
}

/// The last `HISTORY` events, kept serialised end to end in one buffer.
///
/// Why not the events themselves: an event is some twenty small allocations (its strings and the
/// attributes' tree), and a burst of container starts and removals leaves the last 256 events' 5,000
/// allocations scattered over every page the burst's heap touched, so that no page can go back to the
/// kernel: measured, that held 0.9 MB of the daemon's RSS after a burst of 50 containers. One contiguous
/// buffer holds the same in a few pages. Reading it back (`/events?since=`, rare) parses what it returns.
#[derive(Default)]
struct History {
    /// Each kept event's time and the length of its JSON in `json`, oldest first.
    index: VecDeque<(i64, usize)>,
    json: VecDeque<u8>,
}

impl History {
    fn push(&mut self, event: &Event) {
        let Ok(json) = serde_json::to_vec(event) else {
            return;
        };
        if self.index.len() == HISTORY {
            if let Some((_, len)) = self.index.pop_front() {
                self.json.drain(..len);
            }
        }
        self.index.push_back((event.time_nano, json.len()));
        self.json.extend(json);
    }

    fn since(&mut self, since: i64) -> Vec<Event> {
        let json = self.json.make_contiguous();
        let mut at = 0;
        let mut out = Vec::new();
        for &(time, len) in &self.index {
            if time >= since {
                match serde_json::from_slice(&json[at..at + len]) {
                    Ok(event) => out.push(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "an event in the history does not read back")
                    }
                }
            }
            at += len;
        }
        out
    }
}

impl Default for Events {
    fn default() -> Self {
        Events {
            history: Mutex::new(History::default()),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }
}

impl Events {
    /// Records and broadcasts an event.
    pub fn publish(&self, event: Event) {
        tracing::debug!(typ = %event.typ, action = %event.action, id = %event.actor.id, "event");
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.push(&event);
        // Subscribe happens under the same lock, so no event falls between the history and the live feed.
        // A broadcast: no subscriber is the common case.
        let _ = self.live.send(Arc::new(event));
    }

    /// Past events at or after `since_nanos` (none when `None`) and a receiver for every later one.
    pub fn subscribe(
        &self,
        since_nanos: Option<i64>,
    ) -> (Vec<Event>, broadcast::Receiver<Arc<Event>>) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = since_nanos.map(|s| history.since(s)).unwrap_or_default();
        (past, self.live.subscribe())
    }

    /// Number of live subscribers (for `info`'s NEventsListener).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_event() -> Event {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_owned(), "busybox:latest".to_owned());
        Event::new("image", "tag", "sha256:abc", attrs)
    }

    #[test]
    fn history_returns_events_since_and_live_gets_later_ones() {
        let bus = Events::default();
        bus.publish(tag_event());
        let (past, mut rx) = bus.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        bus.publish(tag_event());
        assert_eq!(
            rx.try_recv().map(|e| e.action.clone()).ok().as_deref(),
            Some("tag")
        );
        let (none, _) = bus.subscribe(None);
        assert!(none.is_empty());
    }

    #[test]
    fn the_history_keeps_the_last_256_events_as_they_were() {
        let bus = Events::default();
        for i in 0..300 {
            let mut attrs = BTreeMap::new();
            attrs.insert("name".to_owned(), format!("c{i}"));
            attrs.insert("image".to_owned(), "busybox".to_owned());
            let mut e = Event::new("container", "start", &format!("{i:064}"), attrs);
            e.from = Some("busybox".into());
            bus.publish(e);
        }
        let (past, _) = bus.subscribe(Some(0));
        assert_eq!(past.len(), HISTORY);
        assert_eq!(past[0].actor.attributes["name"], "c44");
        let last = &past[HISTORY - 1];
        assert_eq!(
            (
                &*last.typ,
                &*last.scope,
                last.action.as_str(),
                last.status.as_str()
            ),
            ("container", "local", "start", "start")
        );
        assert_eq!(last.actor.id, format!("{:064}", 299));
        assert_eq!(last.from.as_deref(), Some("busybox"));
        let later = bus.subscribe(Some(last.time_nano + 1)).0;
        assert!(later.is_empty());
    }

    #[test]
    fn filters_select_by_type_action_and_image_name() {
        let e = tag_event();
        let f = |s: &str| Filters::parse(Some(s)).unwrap();
        assert!(e.matches(&f(r#"{"type":["image"]}"#)));
        assert!(!e.matches(&f(r#"{"type":["container"]}"#)));
        assert!(e.matches(&f(r#"{"event":["tag","untag"]}"#)));
        assert!(!e.matches(&f(r#"{"event":["delete"]}"#)));
        assert!(e.matches(&f(r#"{"image":["busybox:latest"]}"#)));
        assert!(!e.matches(&f(r#"{"image":["other"]}"#)));
    }
}
