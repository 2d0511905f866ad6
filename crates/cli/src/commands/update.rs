//! `update`: new resource limits and restart policy for running or stopped containers, with the docker
//! CLI's flags and output (each container as named, one a line; the daemon's errors after).

use serde_json::{json, Value};

use super::path_escape;
use super::run::{parse_memory_swap, parse_restart_policy, ram_in_bytes};
use crate::client::{read_all, Client};
use crate::error::CliError;
use crate::output::print;

/// Flags of `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long, value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short, long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

fn size(flag: &str, text: &str) -> Result<i64, CliError> {
    ram_in_bytes(text).ok_or_else(|| {
        CliError::Usage(format!(
            "invalid argument \"{text}\" for \"{flag}\" flag: invalid size: '{text}'"
        ))
    })
}

/// The update body: only what a flag set.
pub fn update_body(a: &UpdateArgs) -> Result<Value, CliError> {
    let mut body = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    if let Some(w) = a.blkio_weight {
        put("BlkioWeight", json!(w));
    }
    if let Some(v) = a.cpu_period {
        put("CpuPeriod", json!(v));
    }
    if let Some(v) = a.cpu_quota {
        put("CpuQuota", json!(v));
    }
    if let Some(v) = a.cpu_shares {
        put("CpuShares", json!(v));
    }
    if let Some(c) = a.cpus {
        put("NanoCpus", json!((c * 1e9).round() as i64));
    }
    if let Some(v) = &a.cpuset_cpus {
        put("CpusetCpus", json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        put("CpusetMems", json!(v));
    }
    if let Some(m) = &a.memory {
        put("Memory", json!(size("-m, --memory", m)?));
    }
    if let Some(m) = &a.memory_reservation {
        put("MemoryReservation", json!(size("--memory-reservation", m)?));
    }
    if let Some(s) = &a.memory_swap {
        put("MemorySwap", json!(parse_memory_swap(s)?));
    }
    if let Some(p) = a.pids_limit {
        put("PidsLimit", json!(p));
    }
    if let Some(r) = &a.restart {
        put("RestartPolicy", parse_restart_policy(r)?);
    }
    if body.is_empty() {
        return Err(CliError::Io(
            "you must provide one or more flags when using this command".to_string(),
        ));
    }
    Ok(Value::Object(body))
}

/// Updates each container; prints its name as given, then the warnings and errors as the docker CLI does.
pub async fn update(client: &Client, args: UpdateArgs) -> Result<(), CliError> {
    let body = update_body(&args)?;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for name in &args.containers {
        let path = format!("/containers/{}/update", path_escape(name));
        match client.post_json(&path, &body).await {
            Ok(resp) => {
                let answer: Value = serde_json::from_slice(&read_all(resp).await?)
                    .map_err(|e| CliError::Decode(e.to_string()))?;
                for w in answer["Warnings"].as_array().into_iter().flatten() {
                    if let Some(w) = w.as_str() {
                        warnings.push(w.to_owned());
                    }
                }
                print(&format!("{name}\n"))?;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !warnings.is_empty() {
        eprintln!("{}", warnings.join("\n"));
    }
    if !errors.is_empty() {
        return Err(CliError::Io(errors.join("\n")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        update: UpdateArgs,
    }

    #[test]
    fn only_the_given_flags_are_sent() {
        let t = Top::try_parse_from([
            "update",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--restart",
            "on-failure:3",
            "web",
        ])
        .unwrap();
        let b = update_body(&t.update).unwrap();
        assert_eq!(
            b,
            json!({"Memory": 64 << 20, "MemorySwap": -1,
                   "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
        );
        let none = Top::try_parse_from(["update", "web"]).unwrap();
        assert!(update_body(&none.update)
            .unwrap_err()
            .to_string()
            .contains("you must provide one or more flags"));
    }
}
