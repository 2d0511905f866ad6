//! The progress a BuildKit client draws: `StatusResponse` records (vertices, their logs), which the
//! daemon sends base64-encoded as `aux` of `moby.buildkit.trace` in the build's JSON stream.
//!
//! [`Progress`] turns the classic builder's text output (`Step 2/5 : RUN …`, the step's output,
//! ` ---> Using cache`) into such records, so `docker build` in BuildKit mode shows each step as a
//! vertex with its logs, cached steps as `CACHED`, and the failing step with its error.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::wire::Encoder;

fn timestamp(t: SystemTime) -> Vec<u8> {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Encoder::new()
        .uint(1, d.as_secs())
        .uint(2, u64::from(d.subsec_nanos()))
        .finish()
}

/// One vertex (a step) as the client displays it.
#[derive(Debug, Clone, Default)]
struct Vertex {
    digest: String,
    name: String,
    cached: bool,
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
    error: String,
}

impl Vertex {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.string(1, &self.digest)
            .string(3, &self.name)
            .uint(4, u64::from(self.cached));
        if let Some(t) = self.started {
            e.bytes(5, &timestamp(t));
        }
        if let Some(t) = self.completed {
            e.bytes(6, &timestamp(t));
        }
        e.string(7, &self.error);
        e.finish()
    }
}

/// A vertex's progress in bytes (`transferring context: 2.10MB done`).
#[derive(Debug, Clone, Default)]
struct Transfer {
    id: String,
    vertex: String,
    current: u64,
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
}

impl Transfer {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.string(1, &self.id)
            .string(2, &self.vertex)
            .uint(4, self.current)
            .bytes(
                6,
                &timestamp(self.completed.unwrap_or_else(SystemTime::now)),
            );
        if let Some(t) = self.started {
            e.bytes(7, &timestamp(t));
        }
        if let Some(t) = self.completed {
            e.bytes(8, &timestamp(t));
        }
        e.finish()
    }
}

/// A `StatusResponse` of vertices and log lines.
fn status_response(vertices: &[&Vertex], logs: &[(&str, &[u8])]) -> Vec<u8> {
    status_with(vertices, &[], logs)
}

/// A `StatusResponse` of vertices, their byte progress and log lines.
fn status_with(vertices: &[&Vertex], transfers: &[&Transfer], logs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut e = Encoder::new();
    for v in vertices {
        e.bytes(1, &v.encode());
    }
    for t in transfers {
        e.bytes(2, &t.encode());
    }
    let now = timestamp(SystemTime::now());
    for (vertex, msg) in logs {
        let log = Encoder::new()
            .string(1, vertex)
            .bytes(2, &now)
            .uint(3, 1)
            .bytes(4, msg)
            .finish();
        e.bytes(3, &log);
    }
    e.finish()
}

/// Turns a classic build's text output into BuildKit progress records.
#[derive(Debug)]
pub struct Progress {
    /// Makes the vertices of two builds distinct for a client that shows both.
    nonce: String,
    current: Option<Vertex>,
    /// Text of the current line, until its newline.
    line: Vec<u8>,
    /// The step's own output started (after ` ---> Running in …`).
    count: u32,
    /// The last image ID the build gave (`sha256:…`, whole), which `writing image` names.
    image: Option<String>,
}

impl Progress {
    /// A translator for one build.
    pub fn new(nonce: &str) -> Self {
        Progress {
            nonce: nonce.to_owned(),
            current: None,
            line: Vec::new(),
            count: 0,
            image: None,
        }
    }

    fn digest(&self, name: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.nonce.as_bytes());
        h.update(self.count.to_le_bytes());
        h.update(name.as_bytes());
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    fn start(&mut self, name: String, out: &mut Vec<Vec<u8>>) {
        self.complete(out);
        self.count += 1;
        let v = Vertex {
            digest: self.digest(&name),
            name,
            started: Some(SystemTime::now()),
            ..Vertex::default()
        };
        out.push(status_response(&[&v], &[]));
        self.current = Some(v);
    }

    fn complete(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(mut v) = self.current.take() {
            v.completed = Some(SystemTime::now());
            if v.cached {
                v.started = v.completed;
            }
            out.push(status_response(&[&v], &[]));
        }
    }

    /// The build context arrived from the client's session: `bytes` of file data in `took`. Returns the
    /// records of BuildKit's `[internal] load build context` vertex, done, with its transfer.
    pub fn context_loaded(&mut self, bytes: u64, took: std::time::Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.complete(&mut out);
        self.count += 1;
        let name = "[internal] load build context".to_owned();
        let now = SystemTime::now();
        let started = now.checked_sub(took).unwrap_or(now);
        let v = Vertex {
            digest: self.digest(&name),
            name,
            started: Some(started),
            completed: Some(now),
            ..Vertex::default()
        };
        let t = Transfer {
            id: "transferring context:".into(),
            vertex: v.digest.clone(),
            current: bytes,
            started: Some(started),
            completed: Some(now),
        };
        out.push(status_with(&[&v], &[&t], &[]));
        out
    }

    /// A stage's image (`sha256:…`), as the build reports it; the last is the result.
    pub fn image_id(&mut self, id: &str) {
        self.image = Some(id.to_owned());
    }

    /// Takes a piece of the classic output; returns the records to send.
    pub fn text(&mut self, text: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for piece in text.split_inclusive('\n') {
            self.line.extend_from_slice(piece.as_bytes());
            if !piece.ends_with('\n') {
                break;
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        out
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Vec<u8>>) {
        let text = String::from_utf8_lossy(line);
        let t = text.trim_end_matches('\n');
        if let Some(rest) = t.strip_prefix("Step ") {
            // "Step 2/5 : RUN x" → "[2/5] RUN x", as BuildKit names a Dockerfile's steps.
            let name = match rest.split_once(" : ") {
                Some((n, what)) => format!("[{n}] {what}"),
                None => rest.to_owned(),
            };
            self.start(name, out);
            return;
        }
        if t == " ---> Using cache" {
            if let Some(v) = self.current.as_mut() {
                v.cached = true;
            }
            return;
        }
        if t.starts_with(" ---> ") || t.starts_with("Removing intermediate container ") {
            return;
        }
        if let Some(id) = t.strip_prefix("Successfully built ") {
            self.start("exporting to image".into(), out);
            // The whole ID, as BuildKit writes it, when the build gave it (the line has the short one).
            let whole = self
                .image
                .as_deref()
                .and_then(|i| i.strip_prefix("sha256:"))
                .filter(|i| i.starts_with(id))
                .unwrap_or(id)
                .to_owned();
            self.log(&format!("writing image sha256:{whole}\n"), out);
            return;
        }
        if let Some(tag) = t.strip_prefix("Successfully tagged ") {
            if self.current.as_ref().map(|v| v.name.as_str()) != Some("exporting to image") {
                self.start("exporting to image".into(), out);
            }
            self.log(&format!("naming to {tag}\n"), out);
            return;
        }
        if self.current.is_none() {
            self.start("[internal] load build definition".into(), out);
        }
        self.log(&text, out);
    }

    fn log(&self, text: &str, out: &mut Vec<Vec<u8>>) {
        if let Some(v) = &self.current {
            out.push(status_response(&[], &[(&v.digest, text.as_bytes())]));
        }
    }

    /// The build ended: the current step completes, with `error` when the build failed.
    pub fn end(&mut self, error: Option<&str>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        if let (Some(e), Some(v)) = (error, self.current.as_mut()) {
            v.error = e.to_owned();
        }
        self.complete(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fields;
    use bytes::Bytes;

    fn vertices(records: &[Vec<u8>]) -> Vec<(String, bool, bool, String)> {
        let mut out = Vec::new();
        for r in records {
            for (f, v) in fields(Bytes::from(r.clone())).unwrap() {
                if f == 1 {
                    let (mut name, mut cached, mut done, mut err) =
                        (String::new(), false, false, String::new());
                    for (g, w) in fields(v.bytes()).unwrap() {
                        match g {
                            3 => name = w.string(),
                            4 => cached = w.int() != 0,
                            6 => done = true,
                            7 => err = w.string(),
                            _ => {}
                        }
                    }
                    out.push((name, cached, done, err));
                }
            }
        }
        out
    }

    #[test]
    fn classic_steps_become_vertices_with_logs() {
        let mut p = Progress::new("b1");
        let mut rec = p.text(
            "Step 1/2 : FROM busybox\n ---> 0123\nStep 2/2 : RUN echo hi\n ---> Using cache\n",
        );
        rec.extend(p.text(" ---> Running in ab\nh"));
        rec.extend(p.text("i\n"));
        p.image_id("sha256:4567abcd");
        rec.extend(p.text("Successfully built 4567\n"));
        rec.extend(p.end(None));
        let v = vertices(&rec);
        let names: Vec<&str> = v.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "[1/2] FROM busybox",
                "[1/2] FROM busybox",
                "[2/2] RUN echo hi",
                "[2/2] RUN echo hi",
                "exporting to image",
                "exporting to image"
            ]
        );
        assert!(v[3].1 && v[3].2, "step 2 completes as cached");
        assert!(!v[1].1, "step 1 is not cached");
        // The step's output is one log record, joined across pieces: "hi\n".
        let logs: Vec<Bytes> = rec
            .iter()
            .flat_map(|r| fields(Bytes::from(r.clone())).unwrap())
            .filter(|(f, _)| *f == 3)
            .flat_map(|(_, v)| fields(v.bytes()).unwrap())
            .filter(|(f, _)| *f == 4)
            .map(|(_, v)| v.bytes())
            .collect();
        assert_eq!(logs[0], Bytes::from_static(b"hi\n"));
        assert_eq!(
            logs[1],
            Bytes::from_static(b"writing image sha256:4567abcd\n")
        );
    }

    #[test]
    fn a_failure_marks_the_step_it_happened_in() {
        let mut p = Progress::new("b2");
        let mut rec = p.text("Step 1/1 : RUN false\n");
        rec.extend(p.end(Some(
            "The command '/bin/sh -c false' returned a non-zero code: 1",
        )));
        let v = vertices(&rec);
        assert_eq!(
            v.last().unwrap().3,
            "The command '/bin/sh -c false' returned a non-zero code: 1"
        );
        assert!(v.last().unwrap().2);
    }
}
