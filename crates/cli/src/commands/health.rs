//! The `--health-*` and `--no-healthcheck` flags of `run` and `create`, turned into `Config.Healthcheck` as
//! the docker CLI does it.

use serde_json::{json, Value};

use crate::error::CliError;

/// Healthcheck flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthOptions {
    /// Command to run to check health
    #[arg(long, value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

impl HealthOptions {
    /// `Config.Healthcheck`, or `None` when no flag was given (the image's applies).
    pub fn config(&self) -> Result<Option<Value>, CliError> {
        let dur = |flag: &str, v: &Option<String>| -> Result<i64, CliError> {
            let Some(text) = v else { return Ok(0) };
            let ns = build::go_duration_nanos(text).map_err(|e| {
                CliError::Usage(format!(
                    "invalid argument \"{text}\" for \"--{flag}\" flag: {e}"
                ))
            })?;
            if ns < 0 {
                return Err(CliError::Usage(format!("--{flag} cannot be negative")));
            }
            Ok(ns)
        };
        let interval = dur("health-interval", &self.health_interval)?;
        let timeout = dur("health-timeout", &self.health_timeout)?;
        let start_period = dur("health-start-period", &self.health_start_period)?;
        let start_interval = dur("health-start-interval", &self.health_start_interval)?;
        let retries = self.health_retries.unwrap_or(0);
        let cmd = self.health_cmd.clone().unwrap_or_default();
        let any = !cmd.is_empty()
            || interval != 0
            || timeout != 0
            || start_period != 0
            || start_interval != 0
            || retries != 0;
        if self.no_healthcheck {
            if any {
                return Err(CliError::Usage(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        if retries < 0 {
            return Err(CliError::Usage(
                "--health-retries cannot be negative".into(),
            ));
        }
        let test = if cmd.is_empty() {
            Value::Null
        } else {
            json!(["CMD-SHELL", cmd])
        };
        Ok(Some(json!({
            "Test": test,
            "Interval": interval,
            "Timeout": timeout,
            "StartPeriod": start_period,
            "StartInterval": start_interval,
            "Retries": retries,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_docker_s_healthcheck() {
        let o = HealthOptions {
            health_cmd: Some("true".into()),
            health_interval: Some("1s".into()),
            ..Default::default()
        };
        let h = o.config().unwrap().unwrap();
        assert_eq!(h["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(h["Interval"], 1_000_000_000);
        assert_eq!(HealthOptions::default().config().unwrap(), None);
        let none = HealthOptions {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(none.config().unwrap().unwrap()["Test"], json!(["NONE"]));
        let both = HealthOptions {
            no_healthcheck: true,
            health_retries: Some(2),
            ..Default::default()
        };
        assert_eq!(
            both.config().unwrap_err().to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
    }
}
