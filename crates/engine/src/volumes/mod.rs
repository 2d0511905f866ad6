//! Volumes: the local driver's named and anonymous volumes (`DATA_ROOT/volumes/<name>/_data`), the
//! `/volumes` API (create, list, inspect, remove, prune) with Docker's shapes, filters, errors and events, and
//! what containers do with them (`containers.rs`: created at container create with Docker's copy-up, mounted
//! at start, released at removal).

mod containers;
mod copy;
mod local;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard_stubs::models::{VolumeCreateOptions, VolumePruneResponse};
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::events::Event;
use crate::filters::Filters;
use crate::Engine;
pub use containers::VolumeSpec;
pub(crate) use containers::{is_volume_bind, parse_specs, rebuild_refs};
pub use local::validate as validate_local_options;
use store::{Record, ANONYMOUS_LABEL};

/// A volume as the API shows it (Docker's `volume.Volume`, fields in Go's order; `Labels` and `Options` are
/// `null` when the creator gave none).
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    /// When it was made.
    #[serde(rename = "CreatedAt", skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    /// `local`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// User labels.
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The data directory on the host.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    /// The name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver options.
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// `local`.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// Size and reference count (`/system/df` only).
    #[serde(rename = "UsageData", skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<UsageData>,
}

/// `UsageData` of a volume in `/system/df`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageData {
    /// Containers referencing the volume.
    #[serde(rename = "RefCount")]
    pub ref_count: i64,
    /// Bytes used (-1 when unknown).
    #[serde(rename = "Size")]
    pub size: i64,
}

/// `GET /volumes`'s answer.
#[derive(Debug, Serialize)]
pub struct VolumeList {
    /// The volumes.
    #[serde(rename = "Volumes")]
    pub volumes: Vec<Volume>,
    /// Always `null` (no plugins to warn about).
    #[serde(rename = "Warnings")]
    pub warnings: Option<Vec<String>>,
}

impl Engine {
    fn volume_view(&self, r: &Record) -> Volume {
        Volume {
            created_at: r.created_at.clone(),
            driver: r.driver.clone(),
            labels: r.labels.clone(),
            mountpoint: self.volumes.data_path(&r.name).display().to_string(),
            name: r.name.clone(),
            options: r.options.clone(),
            scope: "local".into(),
            usage_data: None,
        }
    }

    /// Publishes a volume event (Actor ID = the volume's name, as dockerd).
    pub(crate) fn volume_event(&self, action: &str, name: &str, attrs: &[(&str, &str)]) {
        let attributes: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.events
            .publish(Event::new("volume", action, name, attributes));
    }

    /// Creates a volume (the store's work on the blocking pool), publishing `create` when it is new.
    pub(crate) async fn make_volume(
        &self,
        name: String,
        driver: String,
        options: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        reference: Option<String>,
    ) -> Result<Record> {
        let volumes = Arc::clone(&self.volumes);
        let made = tokio::task::spawn_blocking(move || {
            volumes.create(&name, &driver, options, labels, reference.as_deref())
        })
        .await??;
        if made.created {
            self.volume_event(
                "create",
                &made.record.name,
                &[("driver", &made.record.driver)],
            );
        }
        Ok(made.record)
    }

    /// `POST /volumes/create`. Without a name, the volume is anonymous: a random 64-hex name and Docker's
    /// `com.docker.volume.anonymous` label. An existing volume of that name is answered as is.
    pub async fn create_volume(&self, req: VolumeCreateOptions) -> Result<Volume> {
        if req.cluster_volume_spec.is_some() {
            // dockerd hands these to its swarm manager, which a node outside a swarm does not have.
            return Err(Error::Unavailable(crate::NOT_SWARM_MANAGER.into()));
        }
        let sorted = |m: Option<std::collections::HashMap<String, String>>| {
            m.map(|m| m.into_iter().collect::<BTreeMap<_, _>>())
        };
        let mut labels = sorted(req.labels);
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ANONYMOUS_LABEL.into(), String::new());
                random_name()?
            }
        };
        let record = self
            .make_volume(
                name,
                req.driver.unwrap_or_default(),
                sorted(req.driver_opts),
                labels,
                None,
            )
            .await?;
        Ok(self.volume_view(&record))
    }

    /// `GET /volumes/{name}`.
    pub async fn inspect_volume(&self, name: &str) -> Result<Volume> {
        Ok(self.volume_view(&self.volumes.get(name)?))
    }

    /// `GET /volumes` (filters `dangling`, `driver`, `label`, `name`).
    pub async fn list_volumes(&self, filters: Filters) -> Result<VolumeList> {
        filters.validate(&["dangling", "driver", "label", "name"])?;
        let dangling = filters.bool("dangling")?;
        let volumes = self
            .volumes
            .list()
            .into_iter()
            .filter(|r| {
                let d = filters.get("driver");
                d.is_empty() || d.contains(&r.driver)
            })
            .filter(|r| {
                let n = filters.get("name");
                n.is_empty() || n.iter().any(|v| r.name.contains(v.as_str()))
            })
            .filter(|r| filters.labels_match("label", |k| label(r, k)))
            .filter(|r| match dangling {
                None => true,
                Some(d) => self.volumes.refs(&r.name).is_empty() == d,
            })
            .map(|r| self.volume_view(&r))
            .collect();
        Ok(VolumeList {
            volumes,
            warnings: None,
        })
    }

    /// `DELETE /volumes/{name}?force=…`: refused while a container uses the volume (409). With `force`, a
    /// missing volume is not an error.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let volumes = Arc::clone(&self.volumes);
        let n = name.to_owned();
        match tokio::task::spawn_blocking(move || volumes.remove(&n)).await? {
            Ok(r) => {
                self.volume_event("destroy", &r.name, &[("driver", &r.driver)]);
                Ok(())
            }
            Err(Error::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /volumes/prune`: removes unused local volumes without mount options; only anonymous ones unless
    /// the `all` filter is true, or `all_by_default` (clients older than API 1.42, as dockerd does).
    /// Filters `label`, `label!`, `all`.
    pub async fn prune_volumes(
        &self,
        filters: Filters,
        all_by_default: bool,
    ) -> Result<VolumePruneResponse> {
        filters.validate(&["label", "label!", "all"])?;
        let all = match filters.get("all") {
            [] => all_by_default,
            [one] => parse_go_bool(one).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "invalid filter 'all': strconv.ParseBool: parsing {}: invalid syntax",
                    go_quote(one)
                ))
            })?,
            many => {
                return Err(Error::InvalidParameter(format!(
                    "invalid filter 'all=[{}]': only one value is expected",
                    many.join(" ")
                )))
            }
        };
        let candidates: Vec<Record> = self
            .volumes
            .list()
            .into_iter()
            .filter(|r| all || r.is_anonymous())
            .filter(|r| r.options.as_ref().is_none_or(|o| o.is_empty()))
            .filter(|r| filters.labels_match("label", |k| label(r, k)))
            .filter(|r| !filters.labels_excluded(|k| label(r, k)))
            .filter(|r| self.volumes.refs(&r.name).is_empty())
            .collect();
        let volumes = Arc::clone(&self.volumes);
        let removed = tokio::task::spawn_blocking(move || {
            let mut removed = Vec::new();
            for r in candidates {
                let size = volumes.size(&r.name).max(0);
                match volumes.remove(&r.name) {
                    Ok(r) => removed.push((r, size)),
                    Err(e) => {
                        tracing::warn!(volume = %r.name, error = %e, "could not remove volume")
                    }
                }
            }
            removed
        })
        .await?;
        let mut reclaimed = 0i64;
        let mut deleted = Vec::new();
        for (r, size) in removed {
            self.volume_event("destroy", &r.name, &[("driver", &r.driver)]);
            reclaimed += size;
            deleted.push(r.name);
        }
        self.volume_event("prune", "", &[("reclaimed", &reclaimed.to_string())]);
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed),
        })
    }

    /// The volume section of `/system/df`: local volumes without mount options, with their size and number of
    /// containers using them.
    pub(crate) async fn volume_usage(&self) -> Result<Vec<bollard_stubs::models::Volume>> {
        let list: Vec<Record> = self
            .volumes
            .list()
            .into_iter()
            .filter(|r| r.options.as_ref().is_none_or(|o| o.is_empty()))
            .collect();
        let volumes = Arc::clone(&self.volumes);
        let sized = tokio::task::spawn_blocking(move || {
            list.into_iter()
                .map(|r| {
                    let size = volumes.size(&r.name);
                    let refs = volumes.refs(&r.name).len() as i64;
                    (r, size, refs)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        Ok(sized
            .into_iter()
            .map(|(r, size, refs)| bollard_stubs::models::Volume {
                name: r.name.clone(),
                driver: r.driver.clone(),
                mountpoint: self.volumes.data_path(&r.name).display().to_string(),
                created_at: Some(r.created_at.clone()),
                labels: r.labels.clone().unwrap_or_default().into_iter().collect(),
                scope: Some(bollard_stubs::models::VolumeScopeEnum::LOCAL),
                options: r.options.clone().unwrap_or_default().into_iter().collect(),
                usage_data: Some(bollard_stubs::models::VolumeUsageData {
                    size,
                    ref_count: refs,
                }),
                ..Default::default()
            })
            .collect())
    }
}

fn label<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// 64 random hex digits, as Docker names anonymous volumes.
pub(crate) fn random_name() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_serialise_in_dockers_field_order_with_null_maps() {
        let v = Volume {
            created_at: "2026-01-01T00:00:00Z".into(),
            driver: "local".into(),
            labels: None,
            mountpoint: "/var/lib/berth/volumes/x/_data".into(),
            name: "x".into(),
            options: Some(BTreeMap::new()),
            scope: "local".into(),
            usage_data: None,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"CreatedAt":"2026-01-01T00:00:00Z","Driver":"local","Labels":null,"Mountpoint":"/var/lib/berth/volumes/x/_data","Name":"x","Options":{},"Scope":"local"}"#
        );
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
