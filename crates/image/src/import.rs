//! `docker import`: a rootfs tar (plain, gzip or zstd) becomes a one-layer image, with `--change`
//! Dockerfile instructions applied to its config.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::time::SystemTime;

use crate::commit::CommitRequest;
use crate::config::{ContainerConfig, Empty, History, ImageConfig, RootFs};
use crate::error::{Error, Result};
use crate::layer::compress::{decompress, BUF_SIZE};
use crate::store::ImageStore;
use crate::{timefmt, Image, ImportOptions};

/// Imports `rootfs` into `store`: a commit of one layer on no parent, with the config `docker import` makes.
pub(crate) fn import(
    store: &ImageStore,
    rootfs: &mut dyn Read,
    opts: &ImportOptions,
) -> Result<Image> {
    let mut container_config = ContainerConfig::default();
    for c in &opts.changes {
        apply_change(&mut container_config, c)?;
    }
    let (_, mut reader) = decompress(io::BufReader::with_capacity(BUF_SIZE, rootfs))
        .map_err(|e| Error::InvalidArchive(format!("reading rootfs: {e}")))?;
    let now = timefmt::rfc3339_nano(SystemTime::now());
    let comment = if opts.message.is_empty() {
        "Imported from -".to_string()
    } else {
        opts.message.clone()
    };
    let config = ImageConfig {
        architecture: opts.platform_arch.clone().unwrap_or_else(|| "amd64".into()),
        os: opts.platform_os.clone().unwrap_or_else(|| "linux".into()),
        created: Some(now.clone()),
        comment: Some(comment.clone()),
        config: Some(container_config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        },
        history: vec![History {
            created: Some(now),
            comment: Some(comment),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    store.commit(
        CommitRequest {
            parent: None,
            config,
            tags: opts.repo_tag.iter().cloned().collect(),
            // `docker import` of an empty tar still makes a one-layer image.
            keep_empty_layer: true,
        },
        Some(&mut reader),
    )
}

/// Applies one `--change` instruction (the subset `docker import`/`commit` accept) to `c`.
pub fn apply_change(c: &mut ContainerConfig, line: &str) -> Result<()> {
    let line = line.trim();
    let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let instr = instr.to_ascii_lowercase();
    let need_args = |rest: &str| {
        if rest.is_empty() {
            Err(Error::InvalidChange(format!(
                "{} requires at least one argument",
                instr.to_uppercase()
            )))
        } else {
            Ok(())
        }
    };
    match instr.as_str() {
        "cmd" => {
            need_args(rest)?;
            c.cmd = Some(exec_or_shell(rest));
        }
        "entrypoint" => {
            need_args(rest)?;
            c.entrypoint = Some(exec_or_shell(rest));
        }
        "env" => {
            need_args(rest)?;
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, "ENV")? {
                let prefix = format!("{k}=");
                let item = format!("{k}={v}");
                match env.iter_mut().find(|e| e.starts_with(&prefix)) {
                    Some(e) => *e = item,
                    None => env.push(item),
                }
            }
        }
        "label" => {
            need_args(rest)?;
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "workdir" => {
            need_args(rest)?;
            let w = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = c.working_dir.clone().unwrap_or_else(|| "/".into());
                format!("{}/{}", base.trim_end_matches('/'), rest)
            };
            c.working_dir = Some(w);
        }
        "user" => {
            need_args(rest)?;
            c.user = Some(rest.to_string());
        }
        "expose" => {
            need_args(rest)?;
            let ports = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in words(rest) {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                ports.insert(p, Empty {});
            }
        }
        "volume" => {
            need_args(rest)?;
            let vols = c.volumes.get_or_insert_with(BTreeMap::new);
            let list = serde_json::from_str::<Vec<String>>(rest).unwrap_or_else(|_| words(rest));
            for v in list {
                vols.insert(v, Empty {});
            }
        }
        "stopsignal" => {
            need_args(rest)?;
            c.stop_signal = Some(rest.to_string());
        }
        "onbuild" => {
            need_args(rest)?;
            c.on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string());
        }
        _ => {
            return Err(Error::InvalidChange(format!(
                "{instr} is not a valid change command"
            )))
        }
    }
    Ok(())
}

/// JSON (exec) form if it parses as a string array, else the shell form `/bin/sh -c …`.
fn exec_or_shell(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
    }
}

/// `k=v k2="v 2"` pairs, or the legacy `k value with spaces` form.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>> {
    let ws = words(rest);
    if ws.first().is_some_and(|w| w.contains('=')) {
        ws.into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Error::InvalidChange(format!(
                    "{instr} names can not be blank"
                ))),
            })
            .collect()
    } else {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::InvalidChange(format!("{instr} must have two arguments")))?;
        Ok(vec![(k.to_string(), v.trim().to_string())])
    }
}

/// Splits on whitespace, honouring quotes and backslash escapes (quotes removed).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}
