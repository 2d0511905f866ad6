//! Legacy links (`--link NAME[:ALIAS]`) on the default bridge, as dockerd keeps them: the linking container
//! (the parent) records each linked container (the child) by ID under an alias, gets `ALIAS_…` environment
//! variables and `/etc/hosts` entries for it when it starts (the child must be running), and its entries
//! follow the child's address when the child starts again. On user-defined networks links are per-endpoint
//! DNS aliases instead (`networks::endpoints`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::{Container, Status};
use crate::error::{Error, Result};
use crate::Engine;

/// One legacy link of a container, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyLink {
    /// The linked container's ID.
    pub child: String,
    /// The name the parent knows it by.
    pub alias: String,
    /// The linked container's name when the link was made, for a link whose container was removed since
    /// (dockerd keeps such links, naming the container as it was).
    #[serde(default)]
    pub child_name: String,
}

/// Splits a `--link` value as dockerd does: `NAME:ALIAS`, `NAME` (the alias is the name), or the form
/// inspect shows (`/NAME:/PARENT/ALIAS`), which clients send back when they copy a container's config.
pub(crate) fn parse_link(val: &str) -> Result<(String, String)> {
    if val.is_empty() {
        return Err(Error::InvalidParameter(
            "empty string specified for links".into(),
        ));
    }
    let parts: Vec<&str> = val.split(':').collect();
    match parts.as_slice() {
        [name] => Ok(((*name).to_owned(), (*name).to_owned())),
        [name, alias] => match name.strip_prefix('/') {
            Some(bare) => Ok((
                bare.to_owned(),
                alias.rsplit('/').next().unwrap_or(alias).to_owned(),
            )),
            None => Ok(((*name).to_owned(), (*alias).to_owned())),
        },
        _ => Err(Error::InvalidParameter(format!(
            "bad format for links: {val}"
        ))),
    }
}

/// Whether a network mode joins the default bridge, where `HostConfig.Links` are legacy links (dockerd
/// registers them for every mode that is not a user-defined network).
fn legacy_mode(mode: &str) -> bool {
    matches!(mode, "" | "default" | "bridge" | "none")
}

/// The variables a linked container gives its parent, in dockerd's order: `ALIAS_PORT` (the first port),
/// per port `ALIAS_PORT_N_PROTO` with `_ADDR`, `_PORT`, `_PROTO`, runs of consecutive ports as
/// `_START`/`_END`, then `ALIAS_NAME` and `ALIAS_ENV_…` for the child's environment (not HOME or PATH).
pub(crate) fn link_env(
    full_name: &str,
    child_ip: &str,
    child_env: &[String],
    exposed: &[String],
) -> Vec<String> {
    let last = full_name.rsplit('/').next().unwrap_or(full_name);
    let alias = last.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            Some((num.parse().ok()?, proto.to_lowercase()))
        })
        .collect();
    // TCP first, then by protocol name; by number within a protocol.
    ports.sort_by(|(an, ap), (bn, bp)| {
        (ap != "tcp", ap.as_str(), *an).cmp(&(bp != "tcp", bp.as_str(), *bn))
    });
    let mut env = Vec::new();
    if let Some((n, proto)) = ports.first() {
        env.push(format!("{alias}_PORT={proto}://{child_ip}:{n}"));
    }
    // A run of consecutive ports is announced once it ends: after the variables of the port that breaks it
    // (or after its own last port when it ends the list), as dockerd does.
    let Some(first) = ports.first().cloned() else {
        return finish(env, &alias, full_name, child_env);
    };
    let (mut start, mut end) = (first.clone(), first);
    for (i, (n, proto)) in ports.iter().enumerate() {
        let prefix = format!("{alias}_PORT_{n}_{}", proto.to_uppercase());
        env.push(format!("{prefix}={proto}://{child_ip}:{n}"));
        env.push(format!("{prefix}_ADDR={child_ip}"));
        env.push(format!("{prefix}_PORT={n}"));
        env.push(format!("{prefix}_PROTO={proto}"));
        if u32::from(*n) == u32::from(end.0) + 1 && *proto == end.1 {
            end = (*n, proto.clone());
            if i + 1 < ports.len() {
                continue;
            }
        }
        if end != start {
            let (s, sp) = &start;
            let prefix = format!("{alias}_PORT_{s}_{}", sp.to_uppercase());
            env.push(format!("{prefix}_START={sp}://{child_ip}:{s}"));
            env.push(format!("{prefix}_PORT_START={s}"));
            env.push(format!("{prefix}_END={}://{child_ip}:{}", end.1, end.0));
            env.push(format!("{prefix}_PORT_END={}", end.0));
        }
        start = (*n, proto.clone());
        end = start.clone();
    }
    finish(env, &alias, full_name, child_env)
}

/// The tail of [`link_env`]: the link's name and the child's environment.
fn finish(mut env: Vec<String>, alias: &str, full_name: &str, child_env: &[String]) -> Vec<String> {
    env.push(format!("{alias}_NAME={full_name}"));
    for kv in child_env {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{k}={v}"));
    }
    env
}

/// Points the `/etc/hosts` lines whose first name is `alias` at `ip` (dockerd's update of a parent's file
/// when a linked container comes back with a new address); rewritten in place, as the file is bind-mounted.
pub(crate) fn update_hosts_alias(hosts: &Path, alias: &str, ip: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(hosts)?;
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.split_once('\t') {
            Some((old, names)) if names.split_whitespace().next() == Some(alias) && old != ip => {
                out.push_str(&format!("{ip}\t{names}\n"));
                changed = true;
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if changed {
        std::fs::write(hosts, out)?;
    }
    Ok(())
}

/// A container's environment with its links' variables placed where dockerd puts them: after `PATH`,
/// `HOSTNAME` and `TERM`, before (and overridable by) the container's own `Env`.
pub(crate) fn with_link_env(c: &Container, link_env: Vec<String>) -> Cow<'_, Container> {
    if link_env.is_empty() {
        return Cow::Borrowed(c);
    }
    let mut with = c.clone();
    let mut env = link_env;
    env.extend(c.config.env.iter().flatten().cloned());
    with.config.env = Some(env);
    Cow::Owned(with)
}

impl Engine {
    /// The legacy links a new container records, from `HostConfig.Links` (dockerd's `registerLinks`): each
    /// linked container must exist (400 otherwise, as dockerd words it), is followed through its
    /// `--network container:X`, and must not use the host's network. On a user-defined network the links
    /// are the endpoint's instead, and nothing is recorded here.
    pub(crate) fn legacy_links(
        &self,
        host: &bollard_stubs::models::HostConfig,
    ) -> Result<Vec<LegacyLink>> {
        let links = host.links.clone().unwrap_or_default();
        let mode = host.network_mode.as_deref().unwrap_or("");
        if links.is_empty() {
            return Ok(Vec::new());
        }
        if mode.starts_with("container:") {
            return Err(Error::InvalidParameter(
                "conflicting options: container type network can't be used with links. This would result in undefined behavior".into(),
            ));
        }
        if mode == "host" {
            return Err(Error::InvalidParameter(HOST_AND_LINKS.into()));
        }
        if !legacy_mode(mode) {
            return Ok(Vec::new());
        }
        let mut out: Vec<LegacyLink> = Vec::new();
        for l in &links {
            let (name, alias) = parse_link(l)?;
            let mut child = self.containers.resolve(&name).map_err(|e| {
                Error::InvalidParameter(format!("could not get container for {name}: {e}"))
            })?;
            let mut hops = 0;
            while let Some(other) = child
                .host_config
                .network_mode
                .as_deref()
                .and_then(|m| m.strip_prefix("container:"))
                .map(str::to_owned)
            {
                // Modes only name containers that existed before, so a cycle cannot be made; a record
                // edited by hand must still not hang the create.
                hops += 1;
                if hops > 64 {
                    return Err(Error::InvalidParameter(format!(
                        "could not get container for {name}: too many network namespace hops"
                    )));
                }
                child = self.containers.resolve(&other).map_err(|e| {
                    Error::InvalidParameter(format!("could not get container for {other}: {e}"))
                })?;
            }
            if child.host_config.network_mode.as_deref() == Some("host") {
                return Err(Error::InvalidParameter(HOST_AND_LINKS.into()));
            }
            // A second link with the same alias is ignored, as dockerd ignores the name it cannot reserve.
            if out.iter().any(|o| o.alias == alias) {
                tracing::warn!(alias = %alias, "ignoring a second link with the same alias");
                continue;
            }
            out.push(LegacyLink {
                child: child.id,
                alias,
                child_name: child.name,
            });
        }
        Ok(out)
    }

    /// The linked containers of `c` that it can use now: (full link name, child record, child's address on
    /// the default bridge). Fails as dockerd's start and exec do when a child is not running.
    fn live_children(&self, c: &Container) -> Result<Vec<(String, Container, String)>> {
        let mut out = Vec::new();
        if c.links.is_empty() || !c.networks.contains_key(crate::networks::DEFAULT_NETWORK) {
            return Ok(out);
        }
        for l in &c.links {
            let full = format!("/{}/{}", c.name, l.alias);
            let child = self.containers.resolve(&l.child).ok();
            let running = child
                .as_ref()
                .is_some_and(|ch| matches!(ch.state.status, Status::Running | Status::Paused));
            let Some(child) = child.filter(|_| running) else {
                let name = self
                    .containers
                    .resolve(&l.child)
                    .map(|ch| ch.name)
                    .unwrap_or_else(|_| l.child_name.clone());
                let name = format!("/{name}");
                return Err(Error::System(format!(
                    "Cannot link to a non running container: {name} AS {full}"
                )));
            };
            let Some(ip) = self.default_bridge_ip(&child.id) else {
                return Err(Error::System(format!(
                    "container {} not attached to default bridge network",
                    child.id
                )));
            };
            out.push((full, child, ip.to_string()));
        }
        Ok(out)
    }

    /// At start, before the variables: each linked container must be on the default bridge (dockerd checks
    /// it when it joins the parent to the bridge, so this error comes before the one for a stopped child).
    pub(crate) fn check_link_networks(&self, c: &Container) -> Result<()> {
        if !c.networks.contains_key(crate::networks::DEFAULT_NETWORK) {
            return Ok(());
        }
        for l in &c.links {
            if let Ok(child) = self.containers.resolve(&l.child) {
                if !child
                    .networks
                    .contains_key(crate::networks::DEFAULT_NETWORK)
                {
                    return Err(Error::System(format!(
                        "Cannot link to /{}, as it does not belong to the default network",
                        child.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The links' variables for `c`'s process or an exec in it (dockerd's `setupLinkedContainers`).
    pub(crate) fn link_env_of(&self, c: &Container) -> Result<Vec<String>> {
        let mut env = Vec::new();
        for (full, child, ip) in self.live_children(c)? {
            env.extend(link_env(
                &full,
                &ip,
                child.config.env.as_deref().unwrap_or_default(),
                child.config.exposed_ports.as_deref().unwrap_or_default(),
            ));
        }
        Ok(env)
    }

    /// The `/etc/hosts` entries `c`'s links give it: `IP\tALIAS HOSTNAME [NAME]` (the name unless it is the
    /// alias), as dockerd writes them before the container's own entry.
    pub(crate) fn link_hosts_of(&self, c: &Container) -> Vec<(String, String)> {
        let Ok(children) = self.live_children(c) else {
            return Vec::new();
        };
        children
            .into_iter()
            .map(|(full, child, ip)| {
                let alias = full.rsplit('/').next().unwrap_or_default().to_owned();
                let mut names = format!(
                    "{alias} {}",
                    child.config.hostname.as_deref().unwrap_or_default()
                );
                if alias != child.name {
                    names.push(' ');
                    names.push_str(&child.name);
                }
                (ip, names)
            })
            .collect()
    }

    /// A child started (again) with the address `ip`: the running parents' `/etc/hosts` lines for it
    /// follow, as dockerd updates them.
    pub(crate) fn update_parents_hosts(&self, child_id: &str, ip: &str) {
        for (parent, alias) in self.containers.parents_of(child_id) {
            let hosts = self.containers.dir(&parent).join("hosts");
            if let Err(e) = update_hosts_alias(&hosts, &alias, ip) {
                tracing::warn!(container = %parent, alias = %alias, error = %e, "updating a link's hosts entry");
            }
        }
    }

    /// `DELETE /containers/{/PARENT/ALIAS}?link=1`: removes the parent's link (dockerd's `rmLink`).
    pub async fn remove_link(&self, name: &str) -> Result<()> {
        let full = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
        let found = if parent.is_empty() {
            None
        } else {
            self.containers
                .resolve(parent)
                .ok()
                .filter(|p| p.links.iter().any(|l| l.alias == alias))
        };
        let Some(p) = found else {
            // dockerd resolves the link's name as a container's first: an unknown one is not found.
            let c = self.containers.resolve(&full)?;
            if parent.is_empty() {
                return Err(Error::System(
                    "Conflict, cannot remove the default link name of the container".into(),
                ));
            }
            return Err(Error::System(format!(
                "Cannot get parent {parent} for link name {} ({})",
                full,
                c.short_id()
            )));
        };
        self.containers.update(&p.id, |p| {
            p.links.retain(|l| l.alias != alias);
            if let Some(hl) = p.host_config.links.as_mut() {
                hl.retain(|l| parse_link(l).map(|(_, a)| a != alias).unwrap_or(true));
            }
        })?;
        Ok(())
    }

    /// `HostConfig.Links` as inspect shows them: `/CHILD:/PARENT/ALIAS` per legacy link.
    pub(crate) fn inspect_links(&self, c: &Container) -> Option<Vec<String>> {
        let v: Vec<String> = c
            .links
            .iter()
            .map(|l| {
                let child = self
                    .containers
                    .resolve(&l.child)
                    .map(|ch| ch.name)
                    .unwrap_or_else(|_| l.child_name.clone());
                format!("/{child}:/{}/{}", c.name, l.alias)
            })
            .collect();
        (!v.is_empty()).then_some(v)
    }

    /// The names `docker ps` lists besides each container's own: `/PARENT/ALIAS` for every link to it.
    pub(crate) fn link_names(&self) -> HashMap<String, Vec<String>> {
        self.containers.link_names()
    }
}

const HOST_AND_LINKS: &str = "conflicting options: host type networking can't be used with links. This would result in undefined behavior";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_as_dockerd_parses_them() {
        assert_eq!(parse_link("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(parse_link("db:d").unwrap(), ("db".into(), "d".into()));
        assert_eq!(parse_link("/db:/web/d").unwrap(), ("db".into(), "d".into()));
        assert!(parse_link("a:b:c").is_err());
        assert!(parse_link("").is_err());
    }

    #[test]
    fn env_follows_dockers_order_and_ranges() {
        let env = link_env(
            "/web/my-db",
            "172.17.0.2",
            &["PATH=/bin".into(), "HOME=/root".into(), "PW=x=y".into()],
            &[
                "53/udp".into(),
                "6380/tcp".into(),
                "6379/tcp".into(),
                "80/tcp".into(),
            ],
        );
        let expected = [
            "MY_DB_PORT=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP_ADDR=172.17.0.2",
            "MY_DB_PORT_80_TCP_PORT=80",
            "MY_DB_PORT_80_TCP_PROTO=tcp",
            "MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379",
            "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2",
            "MY_DB_PORT_6379_TCP_PORT=6379",
            "MY_DB_PORT_6379_TCP_PROTO=tcp",
            "MY_DB_PORT_6380_TCP=tcp://172.17.0.2:6380",
            "MY_DB_PORT_6380_TCP_ADDR=172.17.0.2",
            "MY_DB_PORT_6380_TCP_PORT=6380",
            "MY_DB_PORT_6380_TCP_PROTO=tcp",
            "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
            "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
            "MY_DB_PORT_53_UDP_PORT=53",
            "MY_DB_PORT_53_UDP_PROTO=udp",
            "MY_DB_PORT_6379_TCP_START=tcp://172.17.0.2:6379",
            "MY_DB_PORT_6379_TCP_PORT_START=6379",
            "MY_DB_PORT_6379_TCP_END=tcp://172.17.0.2:6380",
            "MY_DB_PORT_6379_TCP_PORT_END=6380",
            "MY_DB_NAME=/web/my-db",
            "MY_DB_ENV_PW=x=y",
        ];
        assert_eq!(env, expected);
    }

    #[test]
    fn a_range_ending_the_list_is_announced_after_its_last_port() {
        let env = link_env("/p/a", "10.0.0.2", &[], &["1/tcp".into(), "2/tcp".into()]);
        assert_eq!(
            env[9..13],
            [
                "A_PORT_1_TCP_START=tcp://10.0.0.2:1",
                "A_PORT_1_TCP_PORT_START=1",
                "A_PORT_1_TCP_END=tcp://10.0.0.2:2",
                "A_PORT_1_TCP_PORT_END=2",
            ]
        );
        assert_eq!(env[13], "A_NAME=/p/a");
    }

    #[test]
    fn hosts_lines_of_an_alias_follow_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        std::fs::write(
            &p,
            "127.0.0.1\tlocalhost\n172.17.0.2\tdb abc123 mydb\n172.17.0.9\tdbx\n",
        )
        .unwrap();
        update_hosts_alias(&p, "db", "172.17.0.5").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "127.0.0.1\tlocalhost\n172.17.0.5\tdb abc123 mydb\n172.17.0.9\tdbx\n"
        );
    }
}
