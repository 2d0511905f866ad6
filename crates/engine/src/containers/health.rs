//! Healthchecks (`HEALTHCHECK`, `--health-*`): a monitor per running container runs the probe as an exec
//! in the container (the engine's own exec path, so it is listed in `ExecIDs` while it runs and publishes
//! `exec_create`/`exec_start`/`exec_die`, as dockerd's probes do), and keeps `State.Health` as dockerd
//! does: `starting` until the first success or until `Retries` failures in a row (failures during the start
//! period do not count), the last five results, and a `health_status: STATUS` event at every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard_stubs::models::{Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use tokio::sync::watch;

use super::exec::{ExecConfig, ExecStartConfig};
use super::record::{Container, Status};
use crate::error::{Error, Result};
use crate::Engine;

/// Longest probe output kept; more is cut and marked with `...`.
const MAX_OUTPUT: usize = 4096;
/// How many results `State.Health.Log` keeps.
const MAX_LOG: usize = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// How long a killed probe may take to be reported gone before the monitor moves on.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// The running monitors: each one's stop signal, by container ID.
pub type Monitors = Mutex<HashMap<String, watch::Sender<bool>>>;

/// The image's healthcheck under the request's, field by field (a zero or missing field takes the image's),
/// as dockerd merges them at create.
pub(crate) fn merge(
    user: Option<HealthConfig>,
    image: Option<&image::Healthcheck>,
) -> Option<HealthConfig> {
    let Some(img) = image else {
        return user;
    };
    let Some(mut h) = user else {
        return Some(HealthConfig {
            test: img.test.clone(),
            interval: img.interval,
            timeout: img.timeout,
            retries: img.retries,
            start_period: img.start_period,
            start_interval: img.start_interval,
        });
    };
    if h.test.as_ref().is_none_or(Vec::is_empty) {
        h.test = img.test.clone();
    }
    let fill = |mine: &mut Option<i64>, theirs: Option<i64>| {
        if mine.unwrap_or(0) == 0 {
            *mine = theirs.or(*mine);
        }
    };
    fill(&mut h.interval, img.interval);
    fill(&mut h.timeout, img.timeout);
    fill(&mut h.retries, img.retries);
    fill(&mut h.start_period, img.start_period);
    fill(&mut h.start_interval, img.start_interval);
    Some(h)
}

/// dockerd's checks of a healthcheck at create (400 with its words).
pub(crate) fn validate(h: Option<&HealthConfig>) -> Result<()> {
    let Some(h) = h else { return Ok(()) };
    const MIN: i64 = 1_000_000;
    for (what, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        let v = v.unwrap_or(0);
        if v != 0 && v < MIN {
            return Err(Error::InvalidParameter(format!(
                "{what} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries.unwrap_or(0) < 0 {
        return Err(Error::InvalidParameter(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}

/// The command a probe runs: `CMD args…` as is, `CMD-SHELL cmd` through the container's shell
/// (`/bin/sh -c` unless `SHELL` says otherwise); `None` for `NONE`, no test, or an unknown type.
fn probe_command(c: &Container) -> Option<Vec<String>> {
    let test = c.config.healthcheck.as_ref()?.test.as_ref()?;
    let (kind, rest) = test.split_first()?;
    let argv: Vec<String> = match kind.as_str() {
        "CMD" => rest.to_vec(),
        "CMD-SHELL" => {
            let mut argv = c
                .config
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            argv.extend(rest.iter().cloned());
            argv
        }
        "NONE" => return None,
        other => {
            tracing::warn!(id = %c.id, kind = other, "unknown healthcheck type (expected CMD)");
            return None;
        }
    };
    (!argv.is_empty()).then_some(argv)
}

/// A configured duration in nanoseconds, or the default for zero.
fn duration_or(ns: Option<i64>, default: Duration) -> Duration {
    match ns.unwrap_or(0) {
        n if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// Go's `time.Duration.String()`: `30s`, `1.5s`, `500ms`, `2m0s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let s = format!("{whole}.{rest:0digits$}");
            s.trim_end_matches('0').to_owned()
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs_ns = ns % 60_000_000_000;
    let total_min = ns / 60_000_000_000;
    let secs = format!("{}s", frac(secs_ns, 1_000_000_000));
    if total_min == 0 {
        return secs;
    }
    let (h, m) = (total_min / 60, total_min % 60);
    if h == 0 {
        format!("{m}m{secs}")
    } else {
        format!("{h}h{m}m{secs}")
    }
}

/// Probe output: the first 4096 bytes of stdout and stderr together, `...` when more came.
#[derive(Default)]
struct Output {
    buf: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT.saturating_sub(self.buf.len());
        let keep = room.min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

fn now_text() -> String {
    image::timefmt::rfc3339_nano(SystemTime::now())
}

/// How a probe ended.
enum Ended {
    Exited,
    TimedOut,
    Stopped,
}

impl Engine {
    fn monitors(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.health_monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// At every start (and for running containers found again after a daemon restart): the health goes back
    /// to `starting` with no failing streak (the log stays), and the monitor starts. Nothing for a container
    /// without a probe (no healthcheck, or `NONE`).
    pub(crate) fn init_health(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.containers.resolve(id) else {
            return;
        };
        if probe_command(&c).is_none() {
            return;
        }
        self.stop_health_monitor(id);
        let updated = self.containers.update_in_memory(id, |c| {
            let h = c.state.health.get_or_insert_with(Health::default);
            h.status = Some(HealthStatusEnum::STARTING);
            h.failing_streak = Some(0);
            h.log.get_or_insert_with(Vec::new);
        });
        if updated.is_ok() {
            self.open_health_monitor(id);
        }
    }

    /// When the container stops or is paused: the monitor stops (a probe under way is killed) and, as in
    /// dockerd, the status becomes `unhealthy` (without an event).
    pub(crate) fn stop_health(&self, id: &str) {
        if self.stop_health_monitor(id) {
            // The container may be gone already (removed while its monitor stopped): nothing to mark then.
            let _ = self.containers.update_in_memory(id, |c| {
                if let Some(h) = c.state.health.as_mut() {
                    h.status = Some(HealthStatusEnum::UNHEALTHY);
                }
            });
        }
    }

    /// After an unpause: the monitor runs again (the status stays as it is until the next probe).
    pub(crate) fn resume_health(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.containers.resolve(id) else {
            return;
        };
        if c.state.health.is_some() && probe_command(&c).is_some() {
            self.open_health_monitor(id);
        }
    }

    fn stop_health_monitor(&self, id: &str) -> bool {
        match self.monitors().remove(id) {
            Some(stop) => {
                // The monitor may have ended on its own already: then there is nothing to stop.
                let _ = stop.send(true);
                true
            }
            None => false,
        }
    }

    fn open_health_monitor(self: &Arc<Self>, id: &str) {
        let (tx, rx) = watch::channel(false);
        {
            let mut monitors = self.monitors();
            if monitors.contains_key(id) {
                return;
            }
            monitors.insert(id.to_owned(), tx);
        }
        let engine = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move { engine.health_monitor(id, rx).await });
    }

    /// Runs the probe every interval (the start interval while `starting` within the start period) until
    /// told to stop.
    async fn health_monitor(self: Arc<Self>, id: String, mut stop: watch::Receiver<bool>) {
        let Ok(c) = self.containers.resolve(&id) else {
            return;
        };
        let Some(hc) = c.config.healthcheck.clone() else {
            return;
        };
        let interval = duration_or(hc.interval, DEFAULT_INTERVAL);
        let start_interval = duration_or(hc.start_interval, DEFAULT_START_INTERVAL);
        let start_period = duration_or(hc.start_period, Duration::ZERO);
        let started = image::timefmt::parse(&c.state.started_at).unwrap_or_else(SystemTime::now);
        loop {
            let wait = {
                let in_start_period = started.elapsed().unwrap_or_default() < start_period;
                let starting = self.containers.resolve(&id).ok().and_then(|c| {
                    c.state
                        .health
                        .and_then(|h| h.status)
                        .map(|s| s == HealthStatusEnum::STARTING)
                }) == Some(true);
                if in_start_period && starting {
                    start_interval
                } else {
                    interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
            let Ok(c) = self.containers.resolve(&id) else {
                return;
            };
            if c.state.status != Status::Running {
                return;
            }
            let Some(result) = self.probe(&c, &mut stop).await else {
                return;
            };
            if *stop.borrow() {
                return;
            }
            self.record_probe(&c, result, started, start_period);
        }
    }

    /// One probe: an exec of the healthcheck's command with the container's user and working dir, killed
    /// after the timeout. `None` when the monitor was stopped meanwhile.
    async fn probe(
        self: &Arc<Self>,
        c: &Container,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<HealthcheckResult> {
        let start = now_text();
        let failed = |output: String| HealthcheckResult {
            start: Some(start.clone()),
            end: Some(now_text()),
            exit_code: Some(-1),
            output: Some(output),
        };
        let argv = probe_command(c)?;
        let timeout = duration_or(
            c.config.healthcheck.as_ref().and_then(|h| h.timeout),
            DEFAULT_TIMEOUT,
        );
        let cfg = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: Some(argv),
            user: c.config.user.clone(),
            working_dir: c.config.working_dir.clone(),
            ..Default::default()
        };
        let exec_id = match self.create_exec(&c.id, cfg).await {
            Ok(id) => id,
            Err(e) => return Some(failed(e.to_string())),
        };
        let io = self.start_exec(&exec_id, ExecStartConfig::default()).await;
        let mut io = match io {
            Ok(io) => io,
            Err(e) => {
                self.forget_exec(&exec_id);
                return Some(failed(e.to_string()));
            }
        };
        if let Some(e) = io.error.take() {
            self.forget_exec(&exec_id);
            return Some(failed(e));
        }
        let mut out = Output::default();
        let ended = {
            let collect = async {
                while let Some(f) = io.output.recv().await {
                    out.push(&f.data);
                }
            };
            tokio::select! {
                _ = collect => Ended::Exited,
                _ = tokio::time::sleep(timeout) => Ended::TimedOut,
                _ = stopped(stop) => Ended::Stopped,
            }
        };
        if !matches!(ended, Ended::Exited) {
            // Kill the probe and wait (a while) for it to be gone, so dying probes do not pile up.
            let sock = self.shim_socket(&c.id);
            if let Err(e) =
                super::shim_client::ok_command(&sock, &format!("kill 9 {exec_id}")).await
            {
                tracing::debug!(id = %c.id, exec = %exec_id, error = %e, "killing a timed-out health probe");
            }
            // Past the grace period the probe is left to the shim to reap: not an error.
            let _ = tokio::time::timeout(KILL_GRACE, async {
                while let Some(f) = io.output.recv().await {
                    out.push(&f.data);
                }
            })
            .await;
        }
        let code = self.exec_instance(&exec_id).ok().and_then(|e| e.exit_code);
        self.forget_exec(&exec_id);
        match ended {
            Ended::Stopped => None,
            Ended::TimedOut => {
                let output = out.text();
                let limit = go_duration(timeout);
                let msg = if output.is_empty() {
                    format!("Health check exceeded timeout ({limit})")
                } else {
                    format!("Health check exceeded timeout ({limit}): {output}")
                };
                Some(HealthcheckResult {
                    start: Some(start),
                    end: Some(now_text()),
                    exit_code: Some(-1),
                    output: Some(msg),
                })
            }
            Ended::Exited => Some(HealthcheckResult {
                start: Some(start.clone()),
                end: Some(now_text()),
                exit_code: Some(code.unwrap_or(-1)),
                output: Some(out.text()),
            }),
        }
    }

    /// Records a result: the log (five kept), the failing streak and the status; a changed status is
    /// written to the record and published (`health_status: healthy`).
    fn record_probe(
        &self,
        c: &Container,
        result: HealthcheckResult,
        started: SystemTime,
        start_period: Duration,
    ) {
        let retries = c
            .config
            .healthcheck
            .as_ref()
            .and_then(|h| h.retries)
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RETRIES);
        let probe_start = result
            .start
            .as_deref()
            .and_then(image::timefmt::parse)
            .unwrap_or_else(SystemTime::now);
        let mut change = None;
        let updated = self.containers.update_in_memory(&c.id, |c| {
            if c.state.status != Status::Running {
                return;
            }
            let Some(h) = c.state.health.as_mut() else {
                return;
            };
            let old = h.status;
            let log = h.log.get_or_insert_with(Vec::new);
            log.push(result.clone());
            if log.len() > MAX_LOG {
                let extra = log.len() - MAX_LOG;
                log.drain(..extra);
            }
            if result.exit_code == Some(0) {
                h.failing_streak = Some(0);
                h.status = Some(HealthStatusEnum::HEALTHY);
            } else {
                let in_start_period = old == Some(HealthStatusEnum::STARTING)
                    && probe_start.duration_since(started).unwrap_or_default() < start_period;
                if !in_start_period {
                    let streak = h.failing_streak.unwrap_or(0) + 1;
                    h.failing_streak = Some(streak);
                    if streak >= retries {
                        h.status = Some(HealthStatusEnum::UNHEALTHY);
                    }
                }
            }
            if h.status != old {
                change = h.status;
            }
        });
        if let (Ok(_), Some(status)) = (updated, change) {
            // A status change is worth a disk write (the results in between stay in memory, as in dockerd).
            if let Ok(c) = self.containers.update(&c.id, |_| {}) {
                self.container_event(&format!("health_status: {status}"), &c);
            }
        }
    }

    fn forget_exec(&self, exec_id: &str) {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(exec_id);
    }
}

/// Completes when the monitor is told to stop (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// `docker ps` STATUS's health part: `health: starting`, `healthy`, `unhealthy`.
pub(crate) fn status_suffix(c: &Container) -> Option<String> {
    let h = c.state.health.as_ref()?;
    Some(match h.status {
        Some(HealthStatusEnum::STARTING) => "health: starting".into(),
        Some(HealthStatusEnum::HEALTHY) => "healthy".into(),
        _ => "unhealthy".into(),
    })
}

/// The health word the `health` filter of `docker ps` matches: `none` without a health state.
pub(crate) fn filter_word(c: &Container) -> &'static str {
    match c.state.health.as_ref().map(|h| h.status) {
        None => "none",
        Some(Some(HealthStatusEnum::STARTING)) => "starting",
        Some(Some(HealthStatusEnum::HEALTHY)) => "healthy",
        Some(_) => "unhealthy",
    }
}

/// `State.Health` as inspect shows it (the log as a list, never null).
pub(crate) fn inspect_view(c: &Container) -> Option<Health> {
    let h = c.state.health.clone()?;
    Some(Health {
        status: Some(h.status.unwrap_or(HealthStatusEnum::UNHEALTHY)),
        failing_streak: Some(h.failing_streak.unwrap_or(0)),
        log: Some(h.log.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn output_is_cut_at_4096_bytes() {
        let mut o = Output::default();
        o.push(&[b'a'; 4000]);
        o.push(&[b'b'; 200]);
        let t = o.text();
        assert_eq!(t.len(), 4096 + 3);
        assert!(t.ends_with("bb..."));
    }

    #[test]
    fn user_fields_override_the_image_healthcheck_field_by_field() {
        let img = image::Healthcheck {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(5_000_000_000),
            retries: Some(7),
            ..Default::default()
        };
        let user = HealthConfig {
            interval: Some(1_000_000_000),
            ..Default::default()
        };
        let h = merge(Some(user), Some(&img)).unwrap();
        assert_eq!(h.test.unwrap(), ["CMD", "true"]);
        assert_eq!(h.interval, Some(1_000_000_000));
        assert_eq!(h.retries, Some(7));
        assert!(merge(None, None).is_none());
    }

    #[test]
    fn too_short_durations_and_negative_retries_are_refused() {
        let h = HealthConfig {
            interval: Some(10),
            ..Default::default()
        };
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let h = HealthConfig {
            retries: Some(-1),
            ..Default::default()
        };
        assert!(validate(Some(&h)).is_err());
        assert!(validate(None).is_ok());
    }
}
