//! One module per group of commands; [`dispatch`] routes a parsed command to its handler.

pub mod archive;
pub mod attach;
pub mod build;
pub mod commit;
pub mod containers;
mod dial_stdio;
pub mod distribution;
pub mod events;
pub mod exec;
mod health;
pub mod image_ops;
pub mod images;
pub mod inspect;
pub mod network;
mod ports;
mod progress;
pub mod prune;
pub mod run;
pub mod session;
pub mod system;
pub mod update;
pub mod volumes;

use crate::client::Client;
use crate::error::CliError;
use crate::{Command, ContainerCommand, GlobalArgs, ImageCommand, SystemCommand};

/// Connects (negotiating the API version) and runs `command`.
pub async fn dispatch(global: &GlobalArgs, command: Command) -> Result<(), CliError> {
    if let Command::Context(args) = command {
        return crate::context::run(global.context.as_deref(), args);
    }
    let (host, tls) = crate::context::resolve(
        global.host.as_deref(),
        global.context.as_deref(),
        &global.tls,
    )?;
    let mut client = Client::new(&host, &tls)?;
    // `version` prints the client section even when the daemon is down, so it negotiates itself.
    let dial =
        matches!(&command, Command::System(s) if matches!(s.command, SystemCommand::DialStdio));
    if !matches!(command, Command::Version(_)) && !dial {
        client.negotiate().await?;
    }
    match command {
        // Answered above, without a daemon.
        Command::Context(_) => Ok(()),
        Command::Builder(b) => match b.command {
            prune::BuilderCommand::Prune(args) => prune::builder_prune(&client, args).await,
        },
        Command::Images(args) => images::run(&client, args).await,
        Command::Image(image) => match image.command {
            ImageCommand::Ls(args) => images::run(&client, args).await,
            ImageCommand::Rm(args) => image_ops::rmi(&client, args).await,
            ImageCommand::Tag(args) => image_ops::tag(&client, args).await,
            ImageCommand::Save(args) => image_ops::save(&client, args).await,
            ImageCommand::Load(args) => image_ops::load(&client, args).await,
            ImageCommand::Build(args) => build::build(&client, *args).await,
            ImageCommand::Import(args) => image_ops::import(&client, args).await,
            ImageCommand::History(args) => image_ops::history(&client, args).await,
            ImageCommand::Inspect(args) => inspect::image_inspect(&client, args).await,
            ImageCommand::Prune(args) => image_ops::prune(&client, args).await,
            ImageCommand::Pull(args) => distribution::pull(&client, args).await,
            ImageCommand::Push(args) => distribution::push(&client, args).await,
        },
        Command::Rmi(args) => image_ops::rmi(&client, args).await,
        Command::Pull(args) => distribution::pull(&client, args).await,
        Command::Push(args) => distribution::push(&client, args).await,
        Command::Login(args) => distribution::login(&client, args).await,
        Command::Logout(args) => distribution::logout(args).await,
        Command::Tag(args) => image_ops::tag(&client, args).await,
        Command::Save(args) => image_ops::save(&client, args).await,
        Command::Load(args) => image_ops::load(&client, args).await,
        Command::Build(args) => build::build(&client, *args).await,
        Command::Import(args) => image_ops::import(&client, args).await,
        Command::History(args) => image_ops::history(&client, args).await,
        Command::Inspect(args) => inspect::inspect(&client, args).await,
        Command::Version(args) => system::version(&mut client, args).await,
        Command::Info(args) => system::info(&client, args).await,
        Command::System(system) => match system.command {
            SystemCommand::Df(args) => system::df(&client, args).await,
            SystemCommand::Info(args) => system::info(&client, args).await,
            SystemCommand::Events(args) => events::run(&client, args).await,
            SystemCommand::DialStdio => dial_stdio::run(&client).await,
            SystemCommand::Prune(args) => prune::system_prune(&client, args).await,
        },
        Command::Events(args) => events::run(&client, args).await,
        Command::Network(n) => network::run(&client, n.command).await,
        Command::Port(args) => network::port(&client, args).await,
        Command::Volume(args) => volumes::run(&client, args).await,
        Command::Run(args) => run::run(&client, *args).await,
        Command::Create(args) => run::create(&client, *args).await,
        Command::Start(args) => run::start(&client, args).await,
        Command::Ps(args) => containers::ps(&client, args).await,
        Command::Stop(args) => containers::stop(&client, args).await,
        Command::Kill(args) => containers::kill(&client, args).await,
        Command::Restart(args) => containers::restart(&client, args).await,
        Command::Update(args) => update::update(&client, *args).await,
        Command::Rm(args) => containers::rm(&client, args).await,
        Command::Wait(args) => containers::wait(&client, args).await,
        Command::Rename(args) => containers::rename(&client, args).await,
        Command::Logs(args) => containers::logs(&client, args).await,
        Command::Pause(args) => containers::pause(&client, args).await,
        Command::Unpause(args) => containers::unpause(&client, args).await,
        Command::Top(args) => containers::top(&client, args).await,
        Command::Exec(args) => exec::exec(&client, args).await,
        Command::Attach(args) => attach::attach(&client, args).await,
        Command::Stats(args) => containers::stats(&client, args).await,
        Command::Cp(args) => archive::cp(&client, args).await,
        Command::Diff(args) => archive::diff(&client, args).await,
        Command::Commit(args) => commit::commit(&client, args).await,
        Command::Export(args) => archive::export(&client, args).await,
        Command::Container(c) => match c.command {
            ContainerCommand::Run(args) => run::run(&client, *args).await,
            ContainerCommand::Create(args) => run::create(&client, *args).await,
            ContainerCommand::Start(args) => run::start(&client, args).await,
            ContainerCommand::Attach(args) => attach::attach(&client, args).await,
            ContainerCommand::Ls(args) => containers::ps(&client, args).await,
            ContainerCommand::Stop(args) => containers::stop(&client, args).await,
            ContainerCommand::Kill(args) => containers::kill(&client, args).await,
            ContainerCommand::Restart(args) => containers::restart(&client, args).await,
            ContainerCommand::Update(args) => update::update(&client, *args).await,
            ContainerCommand::Rm(args) => containers::rm(&client, args).await,
            ContainerCommand::Wait(args) => containers::wait(&client, args).await,
            ContainerCommand::Rename(args) => containers::rename(&client, args).await,
            ContainerCommand::Logs(args) => containers::logs(&client, args).await,
            ContainerCommand::Pause(args) => containers::pause(&client, args).await,
            ContainerCommand::Unpause(args) => containers::unpause(&client, args).await,
            ContainerCommand::Top(args) => containers::top(&client, args).await,
            ContainerCommand::Exec(args) => exec::exec(&client, args).await,
            ContainerCommand::Stats(args) => containers::stats(&client, args).await,
            ContainerCommand::Inspect(args) => inspect::container_inspect(&client, args).await,
            ContainerCommand::Port(args) => network::port(&client, args).await,
            ContainerCommand::Cp(args) => archive::cp(&client, args).await,
            ContainerCommand::Diff(args) => archive::diff(&client, args).await,
            ContainerCommand::Commit(args) => commit::commit(&client, args).await,
            ContainerCommand::Export(args) => archive::export(&client, args).await,
            ContainerCommand::Prune(args) => prune::container_prune(&client, args).await,
        },
    }
}

/// An image ID as Docker shows it: without `sha256:` and cut to 12 characters unless `no_trunc`.
pub fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Splits `name[:tag]` into name and tag, ignoring a `:` that belongs to a registry port.
pub fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let reference = reference.split_once('@').map_or(reference, |(n, _)| n);
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], Some(&reference[i + 1..])),
        _ => (reference, None),
    }
}

/// The short form of a repository name, as Docker displays it (`docker.io/library/x` → `x`).
pub fn familiar_name(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// Path-escapes an image reference for use in a URL path (keeps `/` and `:` as Docker does).
pub fn path_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A unix time as Go's `time.Time.String()` prints it in local time: `2026-11-29 22:54:46 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(unix, 0).single() {
        Some(t) => {
            let offset = t.format("%z").to_string();
            let zone = if offset == "+0000" {
                "UTC".to_string()
            } else {
                offset.clone()
            };
            format!("{} {offset} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => unix.to_string(),
    }
}

/// A unix time in RFC 3339 (local time, `Z` for UTC), as Go's `time.RFC3339` layout prints it.
pub fn rfc3339(unix: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(unix, 0).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => unix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_id_strips_algorithm_and_cuts_to_twelve() {
        let id = "sha256:5bc555f7f779ca3ac3c26c0eaa7adb1e84687cb09d6c9745add8065f50874f4b";
        assert_eq!(short_id(id, false), "5bc555f7f779");
        assert_eq!(short_id(id, true), id);
    }

    #[test]
    fn split_tag_ignores_registry_port() {
        assert_eq!(split_tag("busybox:latest"), ("busybox", Some("latest")));
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
        assert_eq!(
            split_tag("localhost:5000/app:1"),
            ("localhost:5000/app", Some("1"))
        );
    }

    #[test]
    fn path_escape_keeps_reference_characters() {
        assert_eq!(path_escape("fixture/webapp:1.0"), "fixture/webapp:1.0");
        assert_eq!(path_escape("a b"), "a%20b");
    }
}
