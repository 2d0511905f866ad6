//! `network create/ls/inspect/rm/prune/connect/disconnect` and `port`, printed as Docker prints them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::inspect::{inspect_all, ObjectKind};
use super::path_escape;
use crate::client::{filters_json, query, read_all, Client, ReqBody};
use crate::error::CliError;
use crate::format::template::{Format, Kind};
use crate::output::{confirm, print};

/// Flags of `network create`.
#[derive(Debug, clap::Args)]
pub struct NetworkCreateArgs {
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge", value_name = "string")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings")]
    pub gateway: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long, value_name = "strings")]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long, default_value = "default", value_name = "string")]
    pub ipam_driver: String,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long, value_name = "map")]
    pub opt: Vec<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings")]
    pub subnet: Vec<String>,
    /// The network's name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// Flags of `network ls`.
#[derive(Debug, clap::Args)]
pub struct NetworkLsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

/// Flags of `network inspect`.
#[derive(Debug, clap::Args)]
pub struct NetworkInspectArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    /// Networks to inspect
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// Flags of `network rm`.
#[derive(Debug, clap::Args)]
pub struct NetworkRmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Networks to remove
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// Flags of `network prune`.
#[derive(Debug, clap::Args)]
pub struct NetworkPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `network connect`.
#[derive(Debug, clap::Args)]
pub struct NetworkConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings")]
    pub alias: Vec<String>,
    /// Driver options for the network
    #[arg(long, value_name = "strings")]
    pub driver_opt: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Flags of `network disconnect`.
#[derive(Debug, clap::Args)]
pub struct NetworkDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Flags of `port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// `PRIVATE_PORT[/PROTO]`
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `network` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    /// The network subcommand to run.
    #[command(subcommand)]
    pub command: NetworkCommand,
}

/// The subcommands of `network`.
#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(NetworkConnectArgs),
    /// Create a network
    Create(NetworkCreateArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(NetworkLsArgs),
    /// Remove all unused networks
    Prune(NetworkPruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(NetworkRmArgs),
}

/// Runs a `network` subcommand.
pub async fn run(client: &Client, cmd: NetworkCommand) -> Result<(), CliError> {
    match cmd {
        NetworkCommand::Connect(a) => connect(client, a).await,
        NetworkCommand::Create(a) => create(client, a).await,
        NetworkCommand::Disconnect(a) => disconnect(client, a).await,
        NetworkCommand::Inspect(a) => {
            inspect_all(
                client,
                &a.networks,
                &[ObjectKind::Network],
                a.format.as_deref(),
                Some("network"),
            )
            .await
        }
        NetworkCommand::Ls(a) => ls(client, a).await,
        NetworkCommand::Prune(a) => prune(client, a).await,
        NetworkCommand::Rm(a) => rm(client, a).await,
    }
}

fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The `POST /networks/create` body for these flags (one IPAM pool per `--subnet`, as Docker pairs them).
pub fn create_body(a: &NetworkCreateArgs) -> Result<Value, CliError> {
    if a.subnet.len() < a.gateway.len() || a.subnet.len() < a.ip_range.len() {
        return Err(CliError::Prefixed(
            "every ip-range or gateway must have a corresponding subnet".into(),
        ));
    }
    let pools: Vec<Value> = a
        .subnet
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = json!({"Subnet": s});
            if let Some(r) = a.ip_range.get(i) {
                p["IPRange"] = json!(r);
            }
            if let Some(g) = a.gateway.get(i) {
                p["Gateway"] = json!(g);
            }
            p
        })
        .collect();
    let mut body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Options": key_values(&a.opt),
        "IPAM": {"Driver": a.ipam_driver, "Config": pools, "Options": {}},
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Labels": key_values(&a.label),
    });
    if a.ipv6 {
        body["EnableIPv6"] = json!(true);
    }
    Ok(body)
}

async fn create(client: &Client, a: NetworkCreateArgs) -> Result<(), CliError> {
    let body = create_body(&a)?;
    let resp = client.post_json("/networks/create", &body).await?;
    let v: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    print(&format!("{}\n", v["Id"].as_str().unwrap_or_default()))
}

const LS_HEADERS: [(&str, &str); 8] = [
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("CreatedAt", "CREATED AT"),
];

/// One `network ls` row, with Docker's formatter fields.
pub fn ls_row(n: &Value, trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or_default();
    let id = if trunc {
        id.chars().take(12).collect()
    } else {
        id.to_owned()
    };
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    json!({
        "ID": id,
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv4": n["EnableIPv4"].as_bool().unwrap_or(true).to_string(),
        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
        "Labels": labels.join(","),
        "CreatedAt": n["Created"],
    })
}

async fn ls(client: &Client, a: NetworkLsArgs) -> Result<(), CliError> {
    let filters = filters_json(&a.filter)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let mut nets: Vec<Value> = client
        .get_json(&format!("/networks{}", query(&params)))
        .await?;
    // The docker CLI sorts by name.
    nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let format = if a.quiet {
        Format::parse(Some("{{.ID}}"), "")?
    } else {
        Format::parse_as(
            a.format.as_deref(),
            "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            Kind::NETWORKS,
        )?
    };
    let rows: Vec<Value> = nets.iter().map(|n| ls_row(n, !a.no_trunc)).collect();
    print(&format.render(&rows, &LS_HEADERS)?)
}

async fn rm(client: &Client, a: NetworkRmArgs) -> Result<(), CliError> {
    let mut failed = false;
    for n in &a.networks {
        let path = format!("/networks/{}", path_escape(n));
        match client
            .request(hyper::Method::DELETE, &path, ReqBody::Empty, None)
            .await
        {
            Ok(_) => print(&format!("{n}\n"))?,
            Err(CliError::Daemon { status: 404, .. }) if a.force => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

async fn prune(client: &Client, a: NetworkPruneArgs) -> Result<(), CliError> {
    let warning =
        "WARNING! This will remove all custom networks not used by at least one container.";
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
        return Ok(());
    }
    let filters = filters_json(&a.filter)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let resp = client
        .post(&format!("/networks/prune{}", query(&params)))
        .await?;
    let v: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    let deleted: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if deleted.is_empty() {
        return Ok(());
    }
    print(&format!("Deleted Networks:\n{}\n\n", deleted.join("\n")))
}

async fn connect(client: &Client, a: NetworkConnectArgs) -> Result<(), CliError> {
    let mut ep = json!({
        "Aliases": a.alias,
        "Links": a.link,
        "DriverOpts": key_values(&a.driver_opt),
    });
    if let Some(ip) = &a.ip {
        ep["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    let body = json!({"Container": a.container, "EndpointConfig": ep});
    client
        .post_json(
            &format!("/networks/{}/connect", path_escape(&a.network)),
            &body,
        )
        .await
        .map(|_| ())
}

async fn disconnect(client: &Client, a: NetworkDisconnectArgs) -> Result<(), CliError> {
    let body = json!({"Container": a.container, "Force": a.force});
    client
        .post_json(
            &format!("/networks/{}/disconnect", path_escape(&a.network)),
            &body,
        )
        .await
        .map(|_| ())
}

/// Compares strings with runs of digits compared as numbers (Docker's `sortorder.NaturalLess`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let strip = |d: &[u8]| -> usize { d.iter().take_while(|c| **c == b'0').count() };
                let (tx, ty) = (&dx[strip(dx)..], &dy[strip(dy)..]);
                let ord = tx.len().cmp(&ty.len()).then(tx.cmp(ty));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// `docker port`'s lines from a container's `NetworkSettings.Ports`: every binding as
/// `80/tcp -> 0.0.0.0:8080` (natural order), or for one `PORT[/PROTO]` just the host addresses.
pub fn port_lines(ports: &Value, filter: Option<&str>) -> Result<Vec<String>, String> {
    let host = |b: &Value| {
        let ip = b["HostIp"].as_str().unwrap_or_default();
        let port = b["HostPort"].as_str().unwrap_or_default();
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let map = ports.as_object().cloned().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(f) = filter {
        let (port, proto) = match f.split_once('/') {
            Some((p, pr)) => (p, pr),
            None => (f, "tcp"),
        };
        let key = format!("{port}/{proto}");
        if let Some(Value::Array(list)) = map.get(&key) {
            out.extend(list.iter().map(host));
        }
        if out.is_empty() {
            return Err(format!("No public port '{f}' published for"));
        }
        return Ok(out);
    }
    for (key, list) in &map {
        for b in list.as_array().into_iter().flatten() {
            out.push(format!("{key} -> {}", host(b)));
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub async fn port(client: &Client, a: PortArgs) -> Result<(), CliError> {
    let c: Value = client
        .get_json(&format!("/containers/{}/json", path_escape(&a.container)))
        .await?;
    match port_lines(&c["NetworkSettings"]["Ports"], a.port.as_deref()) {
        Ok(lines) if lines.is_empty() => Ok(()),
        Ok(lines) => print(&format!("{}\n", lines.join("\n"))),
        Err(msg) => Err(CliError::Prefixed(format!("{msg} {}", a.container))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines_print_as_docker_port() {
        let ports = json!({
            "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}],
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
            "443/tcp": null,
        });
        assert_eq!(
            port_lines(&ports, None).unwrap(),
            [
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080",
                "8080/tcp -> 0.0.0.0:32768"
            ]
        );
        assert_eq!(
            port_lines(&ports, Some("80")).unwrap(),
            ["0.0.0.0:8080", "[::]:8080"]
        );
        assert_eq!(
            port_lines(&ports, Some("443")).unwrap_err(),
            "No public port '443' published for"
        );
    }

    #[test]
    fn recorded_docker_port_output_is_reproduced() {
        let ports = json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]});
        let all = include_str!("testdata/docker-port.txt");
        assert_eq!(
            format!("{}\n", port_lines(&ports, None).unwrap().join("\n")),
            all
        );
        let one = include_str!("testdata/docker-port-80-tcp.txt");
        assert_eq!(
            format!(
                "{}\n",
                port_lines(&ports, Some("80/tcp")).unwrap().join("\n")
            ),
            one
        );
    }

    #[test]
    fn subnets_pair_with_gateways_and_ranges() {
        let a = NetworkCreateArgs {
            attachable: false,
            driver: "bridge".into(),
            gateway: vec!["10.1.0.254".into()],
            internal: true,
            ip_range: vec![],
            ipam_driver: "default".into(),
            ipv6: false,
            label: vec!["a=b".into()],
            opt: vec!["com.docker.network.bridge.name=br-x".into()],
            subnet: vec!["10.1.0.0/24".into()],
            name: "n".into(),
        };
        let b = create_body(&a).unwrap();
        assert_eq!(
            b["IPAM"]["Config"],
            json!([{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254"}])
        );
        assert_eq!(b["Options"]["com.docker.network.bridge.name"], "br-x");
        assert_eq!(b["Internal"], true);
    }
}
