//! Restart policies (`--restart no|always|on-failure[:N]|unless-stopped`), as dockerd's restart manager
//! applies them: after an exit the container goes `restarting` and is started again after a back-off that
//! starts at 100 ms and doubles up to a minute (back to 100 ms once a run lasted 10 s); `docker stop` and
//! `docker kill` cancel that until the next user start, and mark the container "manually stopped", which
//! `unless-stopped` honours across daemon restarts (`always` does not: dockerd starts those again whenever
//! it starts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};
use tokio::sync::{broadcast, Notify};

use super::record::{Container, Status, ZERO_TIME};
use super::StateChange;
use crate::error::{Error, Result};
use crate::Engine;

/// The first back-off.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The back-off never grows past this.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// The in-memory restart manager of one container (as dockerd's, it does not survive the daemon).
#[derive(Debug, Default)]
struct Manager {
    /// The current back-off (zero before the first restart).
    delay: Duration,
    /// A stop or kill cancelled restarts until the next user start.
    canceled: bool,
    /// The pending restart's wake-up, while the container waits in `restarting`.
    pending: Option<Arc<Notify>>,
}

/// Every container's restart manager.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    managers: Mutex<HashMap<String, Manager>>,
}

impl Restarts {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Manager) -> T) -> T {
        let mut m = self.managers.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(id.to_owned()).or_default())
    }

    fn forget(&self, id: &str) {
        let mut m = self.managers.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(id);
    }
}

/// Checks a restart policy as dockerd does (`ValidateRestartPolicy`), and `--rm` with one.
pub fn validate(policy: Option<&RestartPolicy>, auto_remove: bool) -> Result<()> {
    let Some(p) = policy else { return Ok(()) };
    let count = p.maximum_retry_count.unwrap_or(0);
    match p.name {
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            if count < 0 {
                return Err(Error::InvalidParameter(
                    "invalid restart policy: maximum retry count cannot be negative".into(),
                ));
            }
        }
        Some(
            RestartPolicyNameEnum::ALWAYS
            | RestartPolicyNameEnum::UNLESS_STOPPED
            | RestartPolicyNameEnum::NO,
        ) => {
            if count != 0 {
                let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .to_owned();
                if count < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(Error::InvalidParameter(msg));
            }
        }
        // Clients before dockerd 25 sent an empty name with any count.
        Some(RestartPolicyNameEnum::EMPTY) | None => {}
    }
    if auto_remove && !is_none(p) {
        return Err(Error::InvalidParameter(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

/// The message dockerd gives for a policy name it does not know (the models refuse those while parsing,
/// so the API checks the raw JSON with this first). `pointer` leads to the `RestartPolicy` object.
pub fn check_raw_policy(body: &serde_json::Value, pointer: &str) -> Result<()> {
    let name = body
        .pointer(pointer)
        .and_then(|p| p.get("Name"))
        .and_then(|n| n.as_str());
    match name {
        None | Some("" | "no" | "always" | "unless-stopped" | "on-failure") => Ok(()),
        Some(other) => Err(Error::InvalidParameter(format!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

fn is_none(p: &RestartPolicy) -> bool {
    matches!(
        p.name,
        None | Some(RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO)
    )
}

/// dockerd's decision: `always` restarts, `unless-stopped` unless stopped by the user, `on-failure` on a
/// non-zero code while fewer than `MaximumRetryCount` restarts were made (0: no bound).
pub fn should_restart(
    policy: Option<&RestartPolicy>,
    exit_code: i64,
    manually_stopped: bool,
    restart_count: i64,
) -> bool {
    let Some(p) = policy else { return false };
    match p.name {
        Some(RestartPolicyNameEnum::ALWAYS) => true,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => !manually_stopped,
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            let max = p.maximum_retry_count.unwrap_or(0);
            (max == 0 || restart_count < max) && exit_code != 0
        }
        _ => false,
    }
}

/// The next back-off: reset after a long run, then 100 ms, doubling up to a minute.
fn next_delay(current: Duration, ran_for: Duration) -> Duration {
    let current = if ran_for >= RESET_AFTER {
        Duration::ZERO
    } else {
        current
    };
    if current.is_zero() {
        FIRST_DELAY
    } else {
        (current * 2).min(MAX_DELAY)
    }
}

/// How long the container's last run lasted.
fn ran_for(c: &Container) -> Duration {
    image::timefmt::parse(&c.state.started_at)
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

/// A restart decided at an exit: wait `delay`, unless `cancel` is notified first.
pub(crate) struct Planned {
    delay: Duration,
    cancel: Arc<Notify>,
}

impl Engine {
    /// At an exit: whether the policy restarts the container, and after which back-off. Updates the
    /// manager's back-off as dockerd does at every exit.
    pub(crate) fn plan_restart(&self, c: &Container, exit_code: i64) -> Option<Planned> {
        let policy = c.host_config.restart_policy.as_ref();
        if policy.is_none_or(is_none) {
            return None;
        }
        let ran = ran_for(c);
        self.restarts.with(&c.id, |m| {
            if m.canceled || m.pending.is_some() {
                return None;
            }
            m.delay = next_delay(m.delay, ran);
            if !should_restart(policy, exit_code, c.manually_stopped, c.restart_count) {
                return None;
            }
            let cancel = Arc::new(Notify::new());
            m.pending = Some(Arc::clone(&cancel));
            Some(Planned {
                delay: m.delay,
                cancel,
            })
        })
    }

    /// Waits out the back-off, then starts the container again; a cancelled or failed restart leaves it
    /// exited (and wakes whoever waits for that).
    pub(crate) fn schedule_restart(self: &Arc<Self>, id: String, plan: Planned) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let woke = tokio::select! {
                _ = tokio::time::sleep(plan.delay) => false,
                _ = plan.cancel.notified() => true,
            };
            let go = engine.restarts.with(&id, |m| {
                m.pending = None;
                !woke && !m.canceled
            });
            if go {
                if let Ok(c) = engine.containers.resolve(&id) {
                    if c.state.status == Status::Restarting && engine.begin_start(&id) {
                        let r = engine.start_inner(&c).await;
                        engine.end_start(&id);
                        match r {
                            Ok(()) => return,
                            Err(e) => {
                                tracing::warn!(id, error = %e, "restarting the container failed")
                            }
                        }
                    }
                }
            }
            if let Ok(c) = engine.containers.update(&id, |c| {
                if c.state.status == Status::Restarting {
                    c.state.status = Status::Exited;
                }
            }) {
                // A broadcast: having no one listening is not a failure.
                let _ = engine
                    .states
                    .send(StateChange::Exited(id.clone(), c.state.exit_code));
            }
        });
    }

    /// Marks the start of a start (so two starts cannot race); false if one is under way.
    pub(crate) fn begin_start(&self, id: &str) -> bool {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned())
    }

    /// Ends what [`Engine::begin_start`] began.
    pub(crate) fn end_start(&self, id: &str) {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// A signal from the user (`stop`, `kill`, `rm -f`): the container counts as manually stopped, and a
    /// signal that ends it (SIGKILL, its stop signal, or any signal when it has none) cancels restarts
    /// until the next user start, as dockerd's `killWithSignal` does.
    pub(crate) fn note_user_signal(&self, c: &Container, sig: i32) {
        let stop_signal = c
            .config
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| super::parse_signal(s).ok());
        let ends = sig == libc::SIGKILL || stop_signal.is_none_or(|s| s == sig);
        if ends {
            self.restarts.with(&c.id, |m| {
                m.canceled = true;
                if let Some(n) = m.pending.take() {
                    n.notify_one();
                }
            });
        }
        if !c.manually_stopped {
            if let Err(e) = self.containers.update(&c.id, |c| c.manually_stopped = true) {
                tracing::warn!(id = %c.id, error = %e, "recording a manual stop");
            }
        }
    }

    /// A user start (`start`, `restart`): a fresh restart manager, the count back to zero, and no longer
    /// manually stopped.
    pub(crate) fn reset_restarts(&self, id: &str) -> Result<()> {
        self.restarts.forget(id);
        self.containers.update(id, |c| {
            c.manually_stopped = false;
            c.restart_count = 0;
        })?;
        Ok(())
    }

    /// Forgets a removed container's manager.
    pub(crate) fn forget_restarts(&self, id: &str) {
        self.restarts.forget(id);
    }

    /// Stops a container waiting in `restarting`: cancels the pending restart and waits until it has left
    /// that state; returns the record then (running, if the restart had already begun).
    pub(crate) async fn cancel_restarting(&self, c: &Container, sig: i32) -> Result<Container> {
        let mut states = self.states.subscribe();
        self.note_user_signal(c, sig);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.containers.resolve(&c.id)?;
            if now.state.status != Status::Restarting {
                return Ok(now);
            }
            match tokio::time::timeout_at(deadline, states.recv()).await {
                Err(_) => return Ok(now),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(now),
                Ok(_) => {}
            }
        }
    }

    /// After a daemon restart, starts the stopped containers dockerd would start: those that ran before
    /// and whose policy says so (`always` even when stopped by the user, `unless-stopped` only when not,
    /// `on-failure` for a non-zero exit within the retry bound).
    pub(crate) async fn restart_on_boot(self: &Arc<Self>) {
        for c in self.containers.list() {
            if c.state.status != Status::Exited || c.state.started_at == ZERO_TIME {
                continue;
            }
            let policy = c.host_config.restart_policy.as_ref();
            if !should_restart(
                policy,
                c.state.exit_code,
                c.manually_stopped,
                c.restart_count,
            ) {
                continue;
            }
            tracing::info!(id = %c.id, "starting the container again (restart policy)");
            if let Err(e) = self.start_container(&c.id).await {
                tracing::warn!(id = %c.id, error = %e, "restart policy: start failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: RestartPolicyNameEnum, max: i64) -> RestartPolicy {
        RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }
    }

    #[test]
    fn policies_decide_as_dockerd() {
        use RestartPolicyNameEnum as N;
        let always = policy(N::ALWAYS, 0);
        assert!(should_restart(Some(&always), 0, true, 9));
        let unless = policy(N::UNLESS_STOPPED, 0);
        assert!(should_restart(Some(&unless), 0, false, 0));
        assert!(!should_restart(Some(&unless), 1, true, 0));
        let on_failure = policy(N::ON_FAILURE, 2);
        assert!(!should_restart(Some(&on_failure), 0, false, 0));
        assert!(should_restart(Some(&on_failure), 3, false, 1));
        assert!(!should_restart(Some(&on_failure), 3, false, 2));
        assert!(should_restart(
            Some(&policy(N::ON_FAILURE, 0)),
            1,
            false,
            99
        ));
        assert!(!should_restart(Some(&policy(N::NO, 0)), 1, false, 0));
        assert!(!should_restart(None, 1, false, 0));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let short = Duration::from_secs(1);
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..4 {
            d = next_delay(d, short);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800]);
        for _ in 0..20 {
            d = next_delay(d, short);
        }
        assert_eq!(d, MAX_DELAY);
        assert_eq!(next_delay(d, Duration::from_secs(10)), FIRST_DELAY);
    }

    #[test]
    fn invalid_policies_get_dockerd_words() {
        use RestartPolicyNameEnum as N;
        let e = validate(Some(&policy(N::ALWAYS, 3)), false).unwrap_err();
        assert!(
            e.to_string().contains("can only be used with 'on-failure'"),
            "{e}"
        );
        let e = validate(Some(&policy(N::ON_FAILURE, -1)), false).unwrap_err();
        assert!(e.to_string().contains("cannot be negative"), "{e}");
        let e = validate(Some(&policy(N::ALWAYS, 0)), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "can't create 'AutoRemove' container with restart policy"
        );
        assert!(validate(Some(&policy(N::NO, 0)), true).is_ok());
        let body = serde_json::json!({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}});
        let e = check_raw_policy(&body, "/HostConfig/RestartPolicy").unwrap_err();
        assert!(e.to_string().contains("unknown policy 'sometimes'"), "{e}");
    }
}
