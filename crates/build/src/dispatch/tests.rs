//! The dispatcher against an in-memory backend that records what it was asked to do.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::backend::{Base, Committed, CopySource, RunStep, SourceKind, StepContainer};
use crate::image_config::{History, RunConfig};

/// An image of the fake engine: its parent, config and file contents.
#[derive(Clone)]
struct FakeImage {
    parent: Option<String>,
    config: ImageConfig,
    files: BTreeMap<String, Vec<u8>>,
}

/// A step container of the fake engine.
#[derive(Clone)]
struct FakeStep {
    parent: Option<String>,
    changes: BTreeMap<String, Vec<u8>>,
    config: Option<RunConfig>,
}

#[derive(Default)]
struct Fake {
    images: HashMap<String, FakeImage>,
    tags: HashMap<String, String>,
    steps: HashMap<String, FakeStep>,
    log: Vec<String>,
    runs: Vec<RunStep>,
    copies: Vec<CopySource>,
    next: u64,
    mounts: Vec<tempfile::TempDir>,
    /// Optional features this fake pretends not to have.
    lacks: Vec<crate::backend::Feature>,
}

fn digest(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Fake {
    fn with_busybox() -> Self {
        let mut f = Fake::default();
        let config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            created: "2026-11-29T22:14:25.5602918Z".into(),
            config: Some(RunConfig {
                cmd: Some(vec!["sh".into()]),
                ..Default::default()
            }),
            container_config: Some(RunConfig::default()),
            history: vec![History {
                created: "2026-11-29T22:14:25.5602918Z".into(),
                comment: "Imported from -".into(),
                ..Default::default()
            }],
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec!["sha256:base".into()],
            },
            ..Default::default()
        };
        let files = BTreeMap::from([
            (
                "etc/passwd".to_string(),
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n".to_vec(),
            ),
            (
                "etc/group".to_string(),
                b"root:x:0:\nstaff:x:50:\n".to_vec(),
            ),
        ]);
        f.add_image("busybox:latest", config, files);
        f
    }

    fn add_image(&mut self, tag: &str, config: ImageConfig, files: BTreeMap<String, Vec<u8>>) {
        let id = format!(
            "sha256:{}",
            digest(&serde_json::to_vec(&config).unwrap_or_default())
        );
        self.images.insert(
            id.clone(),
            FakeImage {
                parent: None,
                config,
                files,
            },
        );
        self.tags.insert(tag.to_string(), id);
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        digest(format!("container {}", self.next).as_bytes())
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let full = format::tag_reference(name);
        self.tags
            .get(&full)
            .cloned()
            .or_else(|| self.images.contains_key(name).then(|| name.to_string()))
    }

    fn files_of(&self, image: Option<&str>) -> BTreeMap<String, Vec<u8>> {
        image
            .and_then(|i| self.images.get(i))
            .map(|i| i.files.clone())
            .unwrap_or_default()
    }
}

fn read_tree(src: &Path, dest: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let meta = fs::symlink_metadata(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).file_name())
            .collect();
        names.sort();
        for n in names {
            let d = format!("{}/{}", dest.trim_end_matches('/'), n.to_string_lossy());
            read_tree(&src.join(&n), &d, out);
        }
    } else if meta.file_type().is_symlink() {
        let t = fs::read_link(src).unwrap_or_else(|e| panic!("{e}"));
        out.insert(dest.to_string(), format!("-> {}", t.display()).into_bytes());
    } else {
        out.insert(
            dest.to_string(),
            fs::read(src).unwrap_or_else(|e| panic!("{e}")),
        );
    }
}

impl Backend for Fake {
    fn image(&mut self, name: &str, _: Option<&str>, _: bool) -> Result<Base, BackendError> {
        let id = self.lookup(name).ok_or_else(|| {
            BackendError::NoSuchImage(format!(
                "pull access denied for {name}, repository does not exist or may require 'docker login'"
            ))
        })?;
        self.log.push(format!("image {name}"));
        Ok(Base {
            config: self.images[&id].config.clone(),
            id,
        })
    }

    fn children(&mut self, parent: Option<&str>) -> Result<Vec<Base>, BackendError> {
        Ok(self
            .images
            .iter()
            .filter(|(_, i)| i.parent.as_deref() == parent)
            .map(|(id, i)| Base {
                id: id.clone(),
                config: i.config.clone(),
            })
            .collect())
    }

    fn mount_image(&mut self, image: Option<&str>) -> Result<PathBuf, BackendError> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::Other(e.to_string()))?;
        for (path, data) in self.files_of(image) {
            let p = dir.path().join(path.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| BackendError::Other(e.to_string()))?;
            }
            fs::write(&p, data).map_err(|e| BackendError::Other(e.to_string()))?;
        }
        let path = dir.path().to_path_buf();
        self.mounts.push(dir);
        self.log
            .push(format!("mount {}", image.unwrap_or("scratch")));
        Ok(path)
    }

    fn create(
        &mut self,
        parent: Option<&str>,
        run: &RunStep,
    ) -> Result<StepContainer, BackendError> {
        let id = self.new_id();
        self.steps.insert(
            id.clone(),
            FakeStep {
                parent: parent.map(str::to_string),
                changes: BTreeMap::new(),
                config: Some(run.config.clone()),
            },
        );
        self.runs.push(run.clone());
        Ok(StepContainer { id })
    }

    fn start(&mut self, step: &StepContainer, out: &mut dyn Write) -> Result<i64, BackendError> {
        let s = self
            .steps
            .get_mut(&step.id)
            .ok_or_else(|| BackendError::Other("no such container".into()))?;
        let cmd = s
            .config
            .as_ref()
            .and_then(|c| c.cmd.clone())
            .unwrap_or_default()
            .join(" ");
        self.log.push(format!("run {cmd}"));
        writeln!(out, "ran: {cmd}").map_err(|e| BackendError::Other(e.to_string()))?;
        // `exit N` in a command makes it fail with N; `mkdir -p a b` makes directories;
        // anything else writes one file.
        if let Some(code) = cmd
            .split("exit ")
            .nth(1)
            .and_then(|c| c.trim().parse().ok())
        {
            return Ok(code);
        }
        if let Some(rest) = cmd.split("mkdir -p ").nth(1) {
            for dir in rest.split("&&").next().unwrap_or("").split_whitespace() {
                s.changes
                    .insert(format!("{}/", dir.trim_end_matches('/')), Vec::new());
            }
        }
        s.changes
            .insert(format!("/run/{}", digest(cmd.as_bytes())), cmd.into_bytes());
        Ok(0)
    }

    fn mkdir(&mut self, step: &StepContainer, path: &str) -> Result<(), BackendError> {
        self.log.push(format!("mkdir {path}"));
        let s = self
            .steps
            .get_mut(&step.id)
            .ok_or_else(|| BackendError::Other("no such container".into()))?;
        let parent = s.parent.clone();
        let prefix = format!("{}/", path.trim_start_matches('/'));
        let exists = self
            .files_of(parent.as_deref())
            .keys()
            .any(|k| k.trim_start_matches('/').starts_with(&prefix));
        if !exists {
            if let Some(s) = self.steps.get_mut(&step.id) {
                s.changes.insert(format!("{path}/"), Vec::new());
            }
        }
        Ok(())
    }

    fn copy(
        &mut self,
        parent: Option<&str>,
        copies: &[CopySource],
    ) -> Result<StepContainer, BackendError> {
        let id = self.new_id();
        let mut changes = BTreeMap::new();
        for c in copies {
            let dest = match c.kind {
                SourceKind::File if c.dest.ends_with('/') => format!(
                    "{}{}",
                    c.dest,
                    c.src
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                _ => c.dest.clone(),
            };
            let mut got = BTreeMap::new();
            read_tree(&c.src, &dest, &mut got);
            let pm = crate::dockerignore::PatternMatcher::new(&c.exclude)
                .map_err(|e| BackendError::Other(e.to_string()))?;
            got.retain(|path, _| {
                let inner = path
                    .strip_prefix(dest.trim_end_matches('/'))
                    .unwrap_or(path)
                    .trim_start_matches('/');
                c.exclude.is_empty() || !pm.matches_or_parent_matches(inner)
            });
            changes.extend(got);
            self.log.push(format!("copy {} -> {dest}", c.src.display()));
        }
        self.copies.extend(copies.iter().cloned());
        self.steps.insert(
            id.clone(),
            FakeStep {
                parent: parent.map(str::to_string),
                changes,
                config: None,
            },
        );
        Ok(StepContainer { id })
    }

    fn commit(
        &mut self,
        parent: Option<&str>,
        step: Option<&StepContainer>,
        config: &ImageConfig,
    ) -> Result<Committed, BackendError> {
        let mut config = config.clone();
        let (container, changes, is_copy) = match step {
            Some(s) => {
                let st = self
                    .steps
                    .get(&s.id)
                    .ok_or_else(|| BackendError::Other("no such container".into()))?;
                (s.id.clone(), st.changes.clone(), st.config.is_none())
            }
            None => (self.new_id(), BTreeMap::new(), false),
        };
        if !is_copy {
            config.container = container.clone();
            if let Some(cc) = config.container_config.as_mut() {
                cc.hostname = container[..12].to_string();
            }
        }
        config.docker_version = "fake".into();
        if changes.is_empty() {
            if let Some(h) = config.history.last_mut() {
                h.empty_layer = true;
            }
        } else {
            let diff = digest(&serde_json::to_vec(&changes).unwrap_or_default());
            config.rootfs.diff_ids.push(format!("sha256:{diff}"));
        }
        let id = format!(
            "sha256:{}",
            digest(&serde_json::to_vec(&config).unwrap_or_default())
        );
        let mut files = self.files_of(parent);
        files.extend(changes);
        self.images.insert(
            id.clone(),
            FakeImage {
                parent: parent.map(str::to_string),
                config: config.clone(),
                files,
            },
        );
        self.log.push(format!(
            "commit {}",
            config
                .history
                .last()
                .map(|h| h.created_by.as_str())
                .unwrap_or("")
        ));
        Ok(Committed { image: id, config })
    }

    fn download(&mut self, url: &str, to: &Path) -> Result<(), BackendError> {
        self.log.push(format!("download {url}"));
        if url.contains("404") {
            return Err(BackendError::Other(format!(
                "failed to GET {url} with status 404 Not Found: "
            )));
        }
        // A tar header's first bytes: a download is never extracted even when it is an archive.
        let mut body = url.as_bytes().to_vec();
        body.resize(512, 0);
        fs::write(to, body).map_err(|e| BackendError::Other(e.to_string()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o600))
            .map_err(|e| BackendError::Other(e.to_string()))
    }

    fn adopt(&mut self, parent: Option<&str>, image: &str) -> Result<(), BackendError> {
        self.log.push(format!("adopt {image}"));
        let img = self
            .images
            .get_mut(image)
            .ok_or_else(|| BackendError::Other(format!("no image {image}")))?;
        img.parent = parent.map(str::to_string);
        Ok(())
    }

    fn restore(
        &mut self,
        parent: Option<&str>,
        config: &ImageConfig,
        source: &str,
    ) -> Result<Committed, BackendError> {
        self.log.push(format!("restore from {source}"));
        let mut config = config.clone();
        config.docker_version = "fake".into();
        let id = format!(
            "sha256:{}",
            digest(&serde_json::to_vec(&config).unwrap_or_default())
        );
        // The fake keeps whole file maps, not layers: the source's files stand in.
        let files = self.files_of(Some(source));
        self.images.insert(
            id.clone(),
            FakeImage {
                parent: parent.map(str::to_string),
                config: config.clone(),
                files,
            },
        );
        Ok(Committed { image: id, config })
    }

    fn supports(&self, feature: crate::backend::Feature) -> bool {
        !self.lacks.contains(&feature)
    }

    fn remove(&mut self, step: &StepContainer) -> Result<(), BackendError> {
        self.steps.remove(&step.id);
        Ok(())
    }

    fn tag(&mut self, image: &str, reference: &str) -> Result<(), BackendError> {
        self.tags
            .insert(format::tag_reference(reference), image.to_string());
        Ok(())
    }
}

#[derive(Default)]
struct Sink {
    text: String,
    aux: Vec<String>,
}

impl ProgressSink for Sink {
    fn stream(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn aux_id(&mut self, id: &str) {
        self.aux.push(id.to_string());
    }
}

struct Ctx {
    dir: tempfile::TempDir,
}

impl Ctx {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = Ctx { dir };
        for (p, data) in files {
            c.write(p, data);
        }
        c
    }

    fn write(&self, rel: &str, data: &str) {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.dir.path().join(rel), fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

struct Outcome {
    result: Result<String, BuildError>,
    text: String,
    aux: Vec<String>,
}

impl Outcome {
    fn id(&self) -> String {
        match &self.result {
            Ok(id) => id.clone(),
            Err(e) => panic!("build failed: {e}\n{}", self.text),
        }
    }

    fn err(&self) -> String {
        match &self.result {
            Ok(_) => panic!("build succeeded:\n{}", self.text),
            Err(e) => e.to_string(),
        }
    }

    /// The output with IDs replaced by `<id>`, for comparing shapes.
    fn shape(&self) -> String {
        self.text
            .lines()
            .map(|l| {
                for prefix in [
                    " ---> Running in ",
                    "Removing intermediate container ",
                    " ---> ",
                    "Successfully built ",
                ] {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        if rest.len() == 12 && rest.chars().all(|c| c.is_ascii_hexdigit()) {
                            return format!("{prefix}<id>");
                        }
                    }
                }
                l.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn uses_of_cache(&self) -> usize {
        self.text.matches(" ---> Using cache").count()
    }
}

fn run_build(fake: &mut Fake, ctx: &Ctx, dockerfile: &str, opts: &BuildOptions) -> Outcome {
    let loaded = crate::load("Dockerfile", dockerfile.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut sink = Sink::default();
    let result = build(&loaded, opts, ctx.dir.path(), fake, &mut sink);
    Outcome {
        result,
        text: sink.text,
        aux: sink.aux,
    }
}

fn history(fake: &Fake, id: &str) -> Vec<String> {
    fake.images[id]
        .config
        .history
        .iter()
        .map(|h| h.created_by.clone())
        .collect()
}

fn config_of(fake: &Fake, id: &str) -> RunConfig {
    fake.images[id].config.config.clone().unwrap_or_default()
}

const WEBAPP_DOCKERFILE: &str = r#"FROM busybox:latest
LABEL org.example.purpose="berth developer fixture"
ENV GREETING=hello APP_HOME=/srv/app
RUN mkdir -p /srv/app/old /etc/demo/keep && echo one > /etc/demo/drop.conf && echo two > /etc/demo/keep/a.conf && echo x > /srv/app/old/file
WORKDIR /srv/app
COPY site/ ./site/
RUN rm /etc/demo/drop.conf && rm -rf /srv/app/old && mkdir /srv/app/old && echo new > /srv/app/old/only && ln site/index.html site/hard.html && ln -s /srv/app/site/index.html /srv/app/link.html
RUN echo "app:x:1000:1000::/srv/app:/bin/sh" >> /etc/passwd && echo "app:x:1000:" >> /etc/group && chown -R 1000:1000 /srv/app/site
USER app
EXPOSE 8080/tcp
VOLUME ["/srv/app/data"]
HEALTHCHECK --interval=5s CMD test -f /srv/app/site/index.html
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["httpd -f -p 8080 -h /srv/app/site"]
"#;

fn webapp_context() -> Ctx {
    let ctx = Ctx::new(&[]);
    fs::create_dir_all(ctx.dir.path().join("site")).unwrap_or_else(|e| panic!("{e}"));
    ctx.chmod("site", 0o755);
    for name in ["index.html", "style.css"] {
        let data = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/webapp-site")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ctx.write(&format!("site/{name}"), &data);
    }
    ctx
}

/// The fixture Dockerfile gives the history, config and step config dockerd 20.10 wrote for it
/// (tests/fixtures/dockerd-webapp), IDs, hostnames and times aside.
#[test]
fn webapp_fixture_config_and_history_match_dockerd() {
    let reference: ImageConfig =
        serde_json::from_str(include_str!("../../testdata/webapp-config.json").trim_end())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut fake = Fake::with_busybox();
    let ctx = webapp_context();
    let opts = BuildOptions {
        tags: vec!["fixture/webapp:1.0".into()],
        ..Default::default()
    };
    let out = run_build(&mut fake, &ctx, WEBAPP_DOCKERFILE, &opts);
    let id = out.id();

    let want: Vec<String> = reference.history[1..]
        .iter()
        .map(|h| h.created_by.clone())
        .collect();
    assert_eq!(history(&fake, &id)[1..].to_vec(), want);
    let want_empty: Vec<bool> = reference.history.iter().map(|h| h.empty_layer).collect();
    let got_empty: Vec<bool> = fake.images[&id]
        .config
        .history
        .iter()
        .map(|h| h.empty_layer)
        .collect();
    // WORKDIR made a directory dockerd found existing (RUN made /srv/app/old before it); the
    // fake engine does the same check.
    assert_eq!(got_empty, want_empty);

    let blank = |mut c: RunConfig| {
        c.image = String::new();
        c.hostname = String::new();
        c
    };
    let got = &fake.images[&id].config;
    assert_eq!(
        blank(got.config.clone().unwrap_or_default()),
        blank(reference.config.clone().unwrap_or_default())
    );
    assert_eq!(
        blank(got.container_config.clone().unwrap_or_default()),
        blank(reference.container_config.clone().unwrap_or_default())
    );
    assert_eq!(
        got.config.as_ref().map(|c| c.image.clone()),
        fake.images[&id].parent.clone()
    );

    let expected_steps: Vec<String> = std::iter::once("FROM busybox:latest".to_string())
        .chain(WEBAPP_DOCKERFILE.lines().skip(1).map(str::to_string))
        .enumerate()
        .map(|(i, l)| format!("Step {}/14 : {l}", i + 1))
        .collect();
    let got_steps: Vec<String> = out
        .text
        .lines()
        .filter(|l| l.starts_with("Step "))
        .map(str::to_string)
        .collect();
    assert_eq!(got_steps, expected_steps);
    let shape = out.shape();
    assert!(
        shape.starts_with(
            "Step 1/14 : FROM busybox:latest\n ---> <id>\nStep 2/14 : LABEL org.example.purpose=\"berth developer fixture\"\n ---> Running in <id>\nRemoving intermediate container <id>\n ---> <id>\n"
        ),
        "{shape}"
    );
    assert!(
        shape.contains("Step 6/14 : COPY site/ ./site/\n ---> <id>\nStep 7/14"),
        "COPY shows no container: {shape}"
    );
    assert!(
        shape.ends_with(
            " ---> <id>\nSuccessfully built <id>\nSuccessfully tagged fixture/webapp:1.0"
        ),
        "{shape}"
    );
    assert!(out
        .text
        .contains(&format!("Successfully built {}", format::short_id(&id))));
    assert_eq!(out.aux, vec![id.clone()]);
    assert_eq!(fake.tags.get("fixture/webapp:1.0"), Some(&id));
    assert!(fake.steps.is_empty(), "every step container was removed");
    // The RUN container ran with the shell and no entrypoint or healthcheck.
    let run = fake
        .runs
        .iter()
        .find(|r| {
            r.config
                .cmd
                .as_ref()
                .is_some_and(|c| c[2].starts_with("rm /etc"))
        })
        .unwrap_or_else(|| panic!("no RUN"));
    assert_eq!(
        run.config.cmd.as_ref().map(|c| c[..2].to_vec()),
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
    assert_eq!(run.config.working_dir, "/srv/app");
    assert_eq!(run.config.entrypoint, None);
    let copy = &fake.copies[0];
    assert_eq!(
        (copy.dest.as_str(), copy.kind),
        ("/srv/app/site/", SourceKind::Dir)
    );
}

#[test]
fn a_rebuild_hits_every_step_and_gives_the_same_image() {
    let mut fake = Fake::with_busybox();
    let ctx = webapp_context();
    let first = run_build(&mut fake, &ctx, WEBAPP_DOCKERFILE, &BuildOptions::default());
    let runs = fake.runs.len();
    let second = run_build(&mut fake, &ctx, WEBAPP_DOCKERFILE, &BuildOptions::default());
    assert_eq!(first.id(), second.id());
    assert_eq!(second.uses_of_cache(), 13, "{}", second.text);
    assert_eq!(fake.runs.len(), runs, "nothing ran again");
    assert!(!second.text.contains("Running in"));

    let third = run_build(
        &mut fake,
        &ctx,
        WEBAPP_DOCKERFILE,
        &BuildOptions {
            no_cache: true,
            ..Default::default()
        },
    );
    assert_eq!(third.uses_of_cache(), 0);
    assert_ne!(third.id(), first.id());
}

const TWO_STAGES: &str = "FROM busybox AS one
COPY a.txt /a.txt
RUN cat /a.txt
FROM busybox
RUN echo before
COPY b.txt /b.txt
RUN cat /b.txt
COPY --from=one /a.txt /from-one.txt
";

#[test]
fn a_changed_file_misses_from_its_copy_on_in_its_stage_only() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("a.txt", "a"), ("b.txt", "b")]);
    let first = run_build(&mut fake, &ctx, TWO_STAGES, &BuildOptions::default());
    first.id();

    // Touch: same key.
    let f = fs::File::options()
        .write(true)
        .open(ctx.dir.path().join("b.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_else(|e| panic!("{e}"));
    let touched = run_build(&mut fake, &ctx, TWO_STAGES, &BuildOptions::default());
    assert_eq!(touched.id(), first.id());
    assert_eq!(touched.uses_of_cache(), 6);

    // Content change of b.txt: stage one all hits, stage two hits RUN echo then misses.
    ctx.write("b.txt", "B");
    let changed = run_build(&mut fake, &ctx, TWO_STAGES, &BuildOptions::default());
    assert_ne!(changed.id(), first.id());
    let shape = changed.shape();
    assert_eq!(changed.uses_of_cache(), 3, "{shape}");
    assert!(
        shape.contains(
            "Step 6/8 : COPY b.txt /b.txt\n ---> <id>\nStep 7/8 : RUN cat /b.txt\n ---> Running in"
        ),
        "{shape}"
    );
    assert!(
        shape.contains("Step 8/8 : COPY --from=one /a.txt /from-one.txt\n ---> <id>\nSuccessfully"),
        "after a miss the stage does not probe again: {shape}"
    );

    // Mode change: a miss too.
    ctx.chmod("b.txt", 0o755);
    let moded = run_build(&mut fake, &ctx, TWO_STAGES, &BuildOptions::default());
    assert_eq!(moded.uses_of_cache(), 3);
    let file = fake.images[&moded.id()].files.get("/from-one.txt").cloned();
    assert_eq!(
        file,
        Some(b"a".to_vec()),
        "COPY --from read stage one's file"
    );
    assert_eq!(moded.aux.len(), 2, "one aux ID per stage");
}

#[test]
fn copy_keys_are_dockerds_text() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("a.txt", "a"), ("d/x", "x"), ("d/y.txt", "y")]);
    let df = "FROM busybox\nCOPY a.txt /dst/\nCOPY --chown=app:staff d /d\nCOPY *.txt d/*.txt /many/\nADD --chown=7 a.txt rel\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let h = history(&fake, &out.id());
    let mut tree = SourceTree::new(ctx.dir.path());
    let a = format!(
        "file:{}",
        tree.file_hash("a.txt").unwrap_or_else(|e| panic!("{e}"))
    );
    let d = tree.dir_hash("d").unwrap_or_else(|e| panic!("{e}"));
    let y = format!(
        "file:{}",
        tree.file_hash("d/y.txt").unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(h[1], format!("/bin/sh -c #(nop) COPY {a} in /dst/ "));
    assert_eq!(
        h[2],
        format!("/bin/sh -c #(nop) COPY --chown=app:staff{d} in /d ")
    );
    assert_eq!(
        h[3],
        format!(
            "/bin/sh -c #(nop) COPY {} in /many/ ",
            crate::context::hash_list("multi", &[a.clone(), y])
        )
    );
    assert_eq!(h[4], format!("/bin/sh -c #(nop) ADD --chown=7{a} in rel "));
    assert_eq!(
        fake.copies[1].owner,
        Some(crate::backend::Owner { uid: 1000, gid: 50 })
    );
    assert_eq!(
        fake.copies[4].owner,
        Some(crate::backend::Owner { uid: 7, gid: 7 })
    );
    assert_eq!(fake.copies[4].dest, "/rel");
    assert_eq!(fake.copies[1].kind, SourceKind::Dir);
    assert!(!fake.copies[4].extract, "a text file is not an archive");
}

#[test]
fn config_only_steps_write_dockerds_history() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let df = r#"FROM busybox
MAINTAINER Jane <j@example.com>
ARG A B=2
ENV X=1 Y="two words"
LABEL k=v
EXPOSE 80 53/udp
VOLUME /a /b
USER 1000:1000
SHELL ["/bin/bash", "-c"]
STOPSIGNAL SIGKILL
HEALTHCHECK --retries=3 CMD ["true"]
ONBUILD RUN echo child
CMD echo hi
ENTRYPOINT ["/e"]
"#;
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let id = out.id();
    let h = history(&fake, &id);
    assert_eq!(
        h[1..].to_vec(),
        vec![
            "/bin/sh -c #(nop)  MAINTAINER Jane <j@example.com>",
            "/bin/sh -c #(nop)  ARG A B=2",
            "/bin/sh -c #(nop)  ENV X=1 Y=two words",
            "/bin/sh -c #(nop)  LABEL k=v",
            "/bin/sh -c #(nop)  EXPOSE 53/udp 80",
            "/bin/sh -c #(nop)  VOLUME [/a /b]",
            "/bin/sh -c #(nop)  USER 1000:1000",
            "/bin/bash -c #(nop)  SHELL [/bin/bash -c]",
            "/bin/bash -c #(nop)  STOPSIGNAL SIGKILL",
            r#"/bin/bash -c #(nop)  HEALTHCHECK &{["CMD" "true"] "0s" "0s" "0s" '\x03'}"#,
            "/bin/bash -c #(nop)  ONBUILD RUN echo child",
            r#"/bin/bash -c #(nop)  CMD ["/bin/bash" "-c" "echo hi"]"#,
            r#"/bin/bash -c #(nop)  ENTRYPOINT ["/e"]"#,
        ]
    );
    let img = &fake.images[&id].config;
    assert_eq!(img.author, "Jane <j@example.com>");
    assert_eq!(
        img.history.last().map(|h| h.author.as_str()),
        Some("Jane <j@example.com>")
    );
    let c = config_of(&fake, &id);
    assert_eq!(
        c.env,
        Some(vec![
            state::DEFAULT_PATH.to_string(),
            "X=1".into(),
            "Y=two words".into()
        ])
    );
    assert_eq!(
        serde_json::to_value(&c.exposed_ports).unwrap_or_default(),
        serde_json::json!({"53/udp": {}, "80/tcp": {}})
    );
    assert_eq!(c.user, "1000:1000");
    assert_eq!(c.stop_signal, "SIGKILL");
    assert_eq!(c.on_build, Some(vec!["RUN echo child".to_string()]));
    assert_eq!(
        c.cmd,
        Some(vec!["/bin/bash".into(), "-c".into(), "echo hi".into()]),
        "CMD set in this stage survives ENTRYPOINT"
    );
    let cc = fake.images[&id]
        .config
        .container_config
        .clone()
        .unwrap_or_default();
    assert_eq!(
        cc.cmd,
        Some(vec![
            "/bin/bash".into(),
            "-c".into(),
            "#(nop) ".into(),
            "ENTRYPOINT [\"/e\"]".into()
        ])
    );
    assert_eq!(c.healthcheck.map(|h| h.retries), Some(3));
}

#[test]
fn entrypoint_resets_an_inherited_cmd() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let out = run_build(
        &mut fake,
        &ctx,
        "FROM busybox\nENTRYPOINT top -b\n",
        &BuildOptions::default(),
    );
    let c = config_of(&fake, &out.id());
    assert_eq!(c.cmd, None, "busybox's CMD [\"sh\"] is dropped");
    assert_eq!(
        c.entrypoint,
        Some(vec!["/bin/sh".into(), "-c".into(), "top -b".into()])
    );
}

#[test]
fn build_args_scope_and_prefix_run_keys() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let df = "ARG V=3\nARG BASE=busybox\nFROM $BASE\nRUN echo no-args $V\nARG V\nARG A=1\nRUN echo $A $V\nENV A=env\nRUN echo env-wins\nWORKDIR /w/$V\n";
    let opts = BuildOptions {
        build_args: BTreeMap::from([
            ("A".to_string(), Some("opt".to_string())),
            ("HTTP_PROXY".to_string(), Some("http://proxy".to_string())),
            ("UNUSED".to_string(), Some("x".to_string())),
        ]),
        ..Default::default()
    };
    let out = run_build(&mut fake, &ctx, df, &opts);
    let id = out.id();
    let h = history(&fake, &id);
    assert_eq!(
        h[1], "|0 /bin/sh -c echo no-args $V",
        "an undeclared proxy variable is in effect but not in the key"
    );
    assert_eq!(h[4], "|2 A=opt V=3 /bin/sh -c echo $A $V");
    assert_eq!(
        h[6], "|1 V=3 /bin/sh -c echo env-wins",
        "ENV A overrides ARG A"
    );
    assert_eq!(h[7], "/bin/sh -c #(nop) WORKDIR /w/3");
    let run = &fake.runs[1];
    assert_eq!(
        run.config.env,
        Some(vec![
            state::DEFAULT_PATH.to_string(),
            "A=opt".into(),
            "HTTP_PROXY=http://proxy".into(),
            "V=3".into()
        ]),
        "build args are in the RUN environment"
    );
    assert_eq!(
        config_of(&fake, &id).env,
        Some(vec![state::DEFAULT_PATH.to_string(), "A=env".into()]),
        "but not in the image"
    );
    assert!(
        out.text.starts_with(
            "Step 1/10 : ARG V=3\nStep 2/10 : ARG BASE=busybox\nStep 3/10 : FROM $BASE\n"
        ),
        "{}",
        out.text
    );
    assert!(out
        .text
        .contains("[Warning] One or more build-args [UNUSED] were not consumed\n"));

    // The same build hits; a different value of a used arg misses from its RUN on.
    let again = run_build(&mut fake, &ctx, df, &opts);
    assert_eq!(again.id(), id);
    let mut changed = opts.clone();
    changed.build_args.insert("A".into(), Some("other".into()));
    let miss = run_build(&mut fake, &ctx, df, &changed);
    assert_eq!(miss.uses_of_cache(), 3, "{}", miss.text);
    assert!(miss.shape().contains("RUN echo $A $V\n ---> Running in"));
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let df = "FROM busybox AS base\nRUN echo base\nFROM busybox AS unrelated\nRUN echo unrelated\nFROM base AS test\nRUN echo test\nFROM busybox\nRUN echo final\n";
    let out = run_build(
        &mut fake,
        &ctx,
        df,
        &BuildOptions {
            target: Some("TEST".into()),
            ..Default::default()
        },
    );
    let id = out.id();
    let ran: Vec<&str> = fake
        .log
        .iter()
        .filter_map(|l| l.strip_prefix("run /bin/sh -c "))
        .collect();
    assert_eq!(ran, vec!["echo base", "echo test"]);
    assert!(out.text.starts_with("Step 1/4 : FROM busybox AS base\n"));
    assert!(out.text.contains("Step 3/4 : FROM base AS test\n"));
    assert_eq!(history(&fake, &id).len(), 3);
    let err = run_build(
        &mut fake,
        &ctx,
        df,
        &BuildOptions {
            target: Some("nope".into()),
            ..Default::default()
        },
    );
    assert_eq!(err.err(), "failed to reach build target nope in Dockerfile");
}

#[test]
fn onbuild_triggers_run_after_from_in_the_child() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("f.txt", "f")]);
    let parent = run_build(
        &mut fake,
        &ctx,
        "FROM busybox\nONBUILD COPY f.txt /f\nONBUILD RUN echo triggered\n",
        &BuildOptions {
            tags: vec!["parent".into()],
            ..Default::default()
        },
    );
    parent.id();
    let child = run_build(
        &mut fake,
        &ctx,
        "FROM parent\nRUN echo own\n",
        &BuildOptions::default(),
    );
    let id = child.id();
    let shape = child.shape();
    assert!(
        shape.starts_with("Step 1/2 : FROM parent\n# Executing 2 build triggers\n ---> Running in <id>\nran: /bin/sh -c echo triggered\nRemoving intermediate container <id>\n ---> <id>\nStep 2/2 : RUN echo own\n"),
        "{shape}"
    );
    let h = history(&fake, &id);
    assert!(h[h.len() - 3].contains("COPY file:"));
    assert_eq!(h[h.len() - 2], "/bin/sh -c echo triggered");
    assert_eq!(
        config_of(&fake, &id).on_build,
        None,
        "triggers are not inherited further"
    );
}

#[test]
fn labels_option_adds_a_last_step() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let opts = BuildOptions {
        labels: BTreeMap::from([("b".into(), "2 $X".into()), ("a".into(), "1".into())]),
        ..Default::default()
    };
    let out = run_build(&mut fake, &ctx, "FROM busybox\nLABEL a=0\n", &opts);
    let id = out.id();
    assert!(
        out.text
            .contains("Step 3/3 : LABEL \"a\"='1' \"b\"='2 $X'\n"),
        "{}",
        out.text
    );
    assert_eq!(
        history(&fake, &id)[2],
        "/bin/sh -c #(nop)  LABEL a=1 b=2 $X"
    );
    assert_eq!(
        config_of(&fake, &id).labels,
        Some(BTreeMap::from([
            ("a".into(), "1".into()),
            ("b".into(), "2 $X".into())
        ]))
    );
}

#[test]
fn failures_are_worded_as_docker_words_them() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("a", "a"), ("b", "b")]);
    let fail =
        |fake: &mut Fake, df: &str, opts: &BuildOptions| run_build(fake, &ctx, df, opts).err();
    let opts = BuildOptions::default();
    assert_eq!(
        fail(&mut fake, "FROM busybox\nRUN exit 3\n", &opts),
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    assert_eq!(fake.steps.len(), 1, "rm keeps a failed step's container");
    let force = BuildOptions {
        force_rm: true,
        ..Default::default()
    };
    let out = run_build(
        &mut fake,
        &ctx,
        "FROM busybox\nRUN [\"false\", \"exit 1\"]\n",
        &force,
    );
    assert_eq!(
        out.err(),
        "The command 'false exit 1' returned a non-zero code: 1"
    );
    assert!(
        out.shape()
            .ends_with("Removing intermediate container <id>"),
        "{}",
        out.text
    );
    assert_eq!(fake.steps.len(), 1, "forcerm removed the second one");
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY missing.txt /\n", &opts),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY a/under-a-file /\n", &opts),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat a/under-a-file: file does not exist"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY ../outside /\n", &opts),
        "COPY failed: Forbidden path outside the build context: ../outside ()"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY a b /dir\n", &opts),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY *.none /dir/\n", &opts),
        "COPY failed: no source files were specified"
    );
    assert_eq!(
        fail(&mut fake, "FROM nosuch\n", &opts),
        "pull access denied for nosuch, repository does not exist or may require 'docker login'"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nCOPY --chown=nobody a /\n", &opts),
        "unable to convert uid/gid chown string to host mapping: can't find uid for user nobody: no such user: nobody"
    );
    assert_eq!(
        fail(&mut fake, "FROM busybox\nEXPOSE 80/xyz\n", &opts),
        "Invalid proto: xyz"
    );
}

#[test]
fn scratch_heredoc_run_quiet_and_archives() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("f", "f")]);
    // A tar archive: one header block with a valid checksum.
    let mut header = [0u8; 512];
    header[..5].copy_from_slice(b"x.txt");
    header[100..108].copy_from_slice(b"0000644\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend([0u8; 1024]);
    fs::write(ctx.dir.path().join("a.tar"), &tar).unwrap_or_else(|e| panic!("{e}"));
    let df = "FROM scratch\nCOPY f /f\nADD a.tar /x/\nCOPY a.tar /y/\nRUN <<EOF\necho from heredoc\nEOF\n";
    let out = run_build(
        &mut fake,
        &ctx,
        df,
        &BuildOptions {
            quiet: true,
            ..Default::default()
        },
    );
    let id = out.id();
    assert_eq!(out.text, format!("{id}\n"), "-q prints the ID only");
    assert!(fake.copies[1].extract, "ADD extracts a local tar");
    assert!(!fake.copies[2].extract, "COPY never does");
    assert_eq!(
        fake.runs[0].config.cmd,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo from heredoc\n".into()
        ])
    );
    let img = &fake.images[&id];
    assert_eq!(
        img.config.history.len(),
        4,
        "scratch has no history of its own"
    );
    assert_eq!(img.config.architecture, go_arch());
    assert_eq!(img.config.rootfs.diff_ids.len(), 4);
}

/// The Dockerfile behind dockerd's recorded `docker build` output, rebuilt from its step lines.
fn bench_dockerfile(recorded: &str) -> String {
    let mut df = String::new();
    for line in recorded.lines() {
        if let Some((_, ins)) = line.strip_prefix("Step ").and_then(|l| l.split_once(" : ")) {
            df.push_str(ins);
            df.push('\n');
        }
    }
    df
}

/// What dockerd's daemon sent for a build, from the CLI's output: the lines after the CLI's
/// own (`DEPRECATED` notice and `Sending build context`).
fn daemon_part(recorded: &str) -> String {
    recorded
        .lines()
        .skip_while(|l| !l.starts_with("Step "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn output_matches_dockerds_cold_and_cached_builds() {
    let cold = include_str!("../../testdata/docker-build-legacy-output-cold.txt");
    let cached = include_str!("../../testdata/docker-build-legacy-output-cached.txt");
    let df = bench_dockerfile(cold);
    assert_eq!(df.lines().count(), 12);
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("big.bin", "big"), ("small/a", "a"), ("small/b", "b")]);
    let opts = BuildOptions {
        tags: vec!["bench/build10".into()],
        ..Default::default()
    };
    let normalise = |text: &str| {
        Outcome {
            result: Ok(String::new()),
            text: text.to_string(),
            aux: Vec::new(),
        }
        .shape()
    };
    let first = run_build(&mut fake, &ctx, &df, &opts);
    first.id();
    // The fake engine echoes what it runs; those commands printed nothing under dockerd.
    let without_fake_output = |o: &Outcome| {
        o.shape()
            .lines()
            .filter(|l| !l.starts_with("ran: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_fake_output(&first), normalise(&daemon_part(cold)));
    let second = run_build(&mut fake, &ctx, &df, &opts);
    assert_eq!(second.shape(), normalise(&daemon_part(cached)));
    assert_eq!(second.id(), first.id());
}

#[test]
fn heredoc_copy_writes_the_body_as_a_file() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let df = "FROM busybox\nENV WHO=world\nWORKDIR /app\nCOPY <<EOF greeting.txt\nhello $WHO\nEOF\nCOPY <<'RAW' .\n$WHO\nRAW\nRUN true\\\n\n  && true\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let id = out.id();
    let files = &fake.images[&id].files;
    assert_eq!(
        files.get("/app/greeting.txt").map(Vec::as_slice),
        Some(&b"hello world\n"[..])
    );
    assert_eq!(
        files.get("/app/RAW").map(Vec::as_slice),
        Some(&b"$WHO\n"[..])
    );
    assert_eq!(fake.copies[1].dest, "/app/", "`.` is the working directory");
    assert_eq!(
        fake.copies[0].src.file_name().and_then(|n| n.to_str()),
        Some("EOF"),
        "a heredoc file is named after its delimiter"
    );
    let h = history(&fake, &id);
    assert!(
        h[3].starts_with("/bin/sh -c #(nop) COPY file:") && h[3].ends_with(" in greeting.txt "),
        "{}",
        h[3]
    );
    // Same body, same key: the rebuild hits.
    let again = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_eq!(again.id(), id);
    assert!(
        out.text
            .contains("[WARNING]: Empty continuation line found in:"),
        "parser warnings are shown: {}",
        out.text
    );
}

#[test]
fn run_mounts_reach_the_engine_and_key_the_cache() {
    use crate::backend::{CacheSharing, RunMount};
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("src/main.c", "int main;")]);
    let df = "FROM busybox\nWORKDIR /w\nARG ID=pip\nRUN --mount=type=cache,target=/root/.cache,id=$ID,sharing=locked \\\n    --mount=type=bind,source=src,target=src \\\n    --mount=type=secret,id=tok,env=TOKEN \\\n    --mount=type=tmpfs,target=/tmp,size=1m make\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let id = out.id();
    let run = fake
        .runs
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no run"));
    assert_eq!(
        run.mounts,
        vec![
            RunMount::Cache {
                id: "pip".into(),
                target: "/root/.cache".into(),
                sharing: CacheSharing::Locked,
                read_only: false,
                mode: 0o755,
                uid: 0,
                gid: 0,
                seed: None,
            },
            RunMount::Bind {
                source: ctx.dir.path().join("src"),
                target: "/w/src".into(),
                read_only: true,
            },
            RunMount::Secret {
                id: "tok".into(),
                target: None,
                env: Some("TOKEN".into()),
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0,
            },
            RunMount::Tmpfs {
                target: "/tmp".into(),
                size: Some(1 << 20),
            },
        ]
    );
    assert_eq!(
        run.config.cmd,
        Some(vec!["/bin/sh".into(), "-c".into(), "make".into()])
    );
    let h = history(&fake, &id);
    let last = h.last().cloned().unwrap_or_default();
    let src_hash = SourceTree::new(ctx.dir.path())
        .dir_hash("src")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        last,
        format!("|1 ID=pip --mount=type=cache,target=/root/.cache,id=pip,sharing=locked --mount=type=bind,source=src,target=src {src_hash} --mount=type=secret,id=tok,env=TOKEN --mount=type=tmpfs,target=/tmp,size=1m /bin/sh -c make")
    );
    assert!(!serde_json::to_string(&fake.images[&id].config)
        .unwrap_or_default()
        .contains("TOKEN="));

    let again = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_eq!(again.id(), id, "unchanged bound files: a hit");
    ctx.write("src/main.c", "int main(void);");
    let edited = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_ne!(edited.id(), id, "a bound file changed: the RUN reruns");

    let ssh = run_build(
        &mut fake,
        &ctx,
        "FROM busybox\nRUN --mount=type=ssh true\n",
        &BuildOptions::default(),
    );
    assert_eq!(ssh.err(), "RUN --mount=type=ssh is not supported");
    let missing = run_build(
        &mut fake,
        &ctx,
        "FROM busybox\nRUN --mount=source=nope,target=/x true\n",
        &BuildOptions::default(),
    );
    assert_eq!(missing.err(), "RUN --mount source nope not found");
}

#[test]
fn add_downloads_urls_through_the_engine() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[]);
    let df = "FROM busybox\nADD http://h.test/dl/app.tar?x=1 /opt/\nADD https://h.test/dl/app.tar /opt/renamed.tar\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let id = out.id();
    assert_eq!(
        fake.copies[0].src.file_name().and_then(|n| n.to_str()),
        Some("app.tar")
    );
    assert!(!fake.copies[0].extract, "downloads are not extracted");
    assert_eq!(fake.copies[1].dest, "/opt/renamed.tar");
    let h = history(&fake, &id);
    assert!(
        h[1].starts_with("/bin/sh -c #(nop) ADD file:") && h[1].ends_with(" in /opt/ "),
        "{}",
        h[1]
    );
    let again = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_eq!(again.id(), id, "same content, same key");
    assert_eq!(
        fake.log
            .iter()
            .filter(|l| l.starts_with("download "))
            .count(),
        4,
        "fetched on every build, as dockerd"
    );

    let bad = |fake: &mut Fake, df: &str| run_build(fake, &ctx, df, &BuildOptions::default()).err();
    assert_eq!(
        bad(&mut fake, "FROM busybox\nADD http://h.test/ /x\n"),
        "cannot determine filename from url: http://h.test/"
    );
    assert_eq!(
        bad(&mut fake, "FROM busybox\nADD http://h.test/404/f /x\n"),
        "failed to GET http://h.test/404/f with status 404 Not Found: "
    );
    let err = bad(
        &mut fake,
        "FROM busybox\nADD --checksum=sha256:00 http://h.test/f /x\n",
    );
    assert!(
        err.starts_with("digest mismatch sha256:") && err.ends_with(": sha256:00"),
        "{err}"
    );
    assert_eq!(
        bad(&mut fake, "FROM busybox\nADD --checksum=sha256:00 f /x\n"),
        "checksum can't be specified for non-HTTP(S) sources"
    );
}

#[test]
fn copy_exclude_and_parents() {
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[
        ("d/keep.txt", "k"),
        ("d/drop.log", "l"),
        ("d/tmp/x", "x"),
        ("a/b/c.txt", "c"),
        ("x/y/z.txt", "z"),
    ]);
    let df = "FROM busybox\nCOPY --exclude=*.log --exclude=tmp d /d/\nCOPY --parents a/b/c.txt x/./y/*.txt /p\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    let id = out.id();
    let files: Vec<&str> = fake.images[&id]
        .files
        .keys()
        .filter(|k| k.starts_with('/'))
        .map(String::as_str)
        .collect();
    assert_eq!(files, vec!["/d/keep.txt", "/p/a/b/c.txt", "/p/y/z.txt"]);
    let h = history(&fake, &id);
    assert!(
        h[1].starts_with("/bin/sh -c #(nop) COPY --exclude=*.log --exclude=tmp dir:"),
        "{}",
        h[1]
    );
    assert!(
        h[2].starts_with("/bin/sh -c #(nop) COPY --parents multi:"),
        "{}",
        h[2]
    );

    ctx.write("d/drop.log", "changed");
    let again = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_eq!(again.id(), id, "an excluded file does not key the step");
    ctx.write("d/keep.txt", "changed");
    let changed = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    assert_ne!(changed.id(), id);
}

#[test]
fn cache_from_supplies_steps_from_a_pulled_image() {
    let ctx = Ctx::new(&[("a.txt", "a"), ("b.txt", "b")]);
    let df = "FROM busybox\nENV A=1\nCOPY a.txt /a\nRUN make\nCOPY b.txt /b\nCMD [\"run\"]\n";
    let mut first = Fake::with_busybox();
    let built = run_build(&mut first, &ctx, df, &BuildOptions::default());
    let built_id = built.id();

    // Another engine that pulled only the final image (no intermediate images, no parent).
    let mut fresh = Fake::with_busybox();
    let pulled = first.images[&built_id].clone();
    fresh.images.insert(
        built_id.clone(),
        FakeImage {
            parent: None,
            ..pulled
        },
    );
    fresh.tags.insert("app:cache".into(), built_id.clone());
    let opts = BuildOptions {
        cache_from: vec!["app:cache".into(), "missing:tag".into()],
        ..Default::default()
    };
    let out = run_build(&mut fresh, &ctx, df, &opts);
    assert_eq!(out.uses_of_cache(), 5, "{}", out.text);
    assert_eq!(
        out.id(),
        built_id,
        "the last step adopts the source image itself"
    );
    assert!(fresh.runs.is_empty(), "nothing ran");
    assert_eq!(
        fresh
            .log
            .iter()
            .filter(|l| l.starts_with("restore "))
            .count(),
        4
    );
    assert_eq!(
        fresh.images[&built_id]
            .parent
            .as_deref()
            .map(|p| fresh.images.contains_key(p)),
        Some(true)
    );

    // A changed file: the steps before it still come from the source.
    ctx.write("b.txt", "B");
    let changed = run_build(&mut fresh, &ctx, df, &opts);
    assert_eq!(changed.uses_of_cache(), 3, "{}", changed.text);
    assert!(changed
        .shape()
        .contains("Step 5/6 : COPY b.txt /b\n ---> <id>\nStep 6/6"));
}

#[test]
fn features_the_engine_lacks_are_refused_not_ignored() {
    use crate::backend::Feature;
    let ctx = Ctx::new(&[("d/x", "x")]);
    for (feature, df, opts) in [
        (
            Feature::RunMounts,
            "FROM busybox\nRUN --mount=type=tmpfs,target=/t true\n",
            BuildOptions::default(),
        ),
        (
            Feature::CopyExclude,
            "FROM busybox\nCOPY --exclude=x d /d\n",
            BuildOptions::default(),
        ),
        (
            Feature::Download,
            "FROM busybox\nADD http://h.test/f /f\n",
            BuildOptions::default(),
        ),
        (
            Feature::CacheFrom,
            "FROM busybox\nENV A=1\n",
            BuildOptions {
                cache_from: vec!["busybox".into()],
                ..Default::default()
            },
        ),
    ] {
        let mut fake = Fake::with_busybox();
        fake.lacks.push(feature);
        let out = run_build(&mut fake, &ctx, df, &opts);
        assert_eq!(
            out.err(),
            format!("{} is not supported by this engine", feature.what())
        );
    }
}

#[test]
fn a_cache_mount_from_a_stage_is_seeded_from_its_directory() {
    use crate::backend::RunMount;
    let mut fake = Fake::with_busybox();
    let ctx = Ctx::new(&[("x", "seeded")]);
    let df = "FROM busybox AS seed\nCOPY x /s/x\nFROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/s true\n";
    let out = run_build(&mut fake, &ctx, df, &BuildOptions::default());
    out.id();
    let seed_image = fake
        .images
        .iter()
        .find(|(_, i)| i.files.contains_key("/s/x"))
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no seed stage image"));
    let run = fake
        .runs
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no run"));
    match &run.mounts[..] {
        [RunMount::Cache {
            id,
            seed: Some(seed),
            ..
        }] => {
            assert_eq!(id, "/c");
            assert_eq!(seed.key, format!("{seed_image}:/s"));
            assert_eq!(
                fs::read_to_string(seed.source.join("x")).unwrap_or_default(),
                "seeded"
            );
        }
        other => panic!("{other:?}"),
    }

    let missing = "FROM busybox AS seed\nFROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/nope true\n";
    let out = run_build(&mut fake, &ctx, missing, &BuildOptions::default());
    assert_eq!(out.err(), "RUN --mount source /nope not found");
    let file = "FROM busybox AS seed\nCOPY x /s/x\nFROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/s/x true\n";
    let out = run_build(&mut fake, &ctx, file, &BuildOptions::default());
    assert_eq!(
        out.err(),
        "RUN --mount=type=cache source /s/x is not a directory"
    );
}

/// The fake engine behind a lock, forkable: stages run at once on threads of their own.
#[derive(Clone)]
struct Forking {
    fake: std::sync::Arc<std::sync::Mutex<Fake>>,
    limit: usize,
}

impl Forking {
    fn with(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.fake.lock().unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Backend for Forking {
    fn image(&mut self, name: &str, p: Option<&str>, pull: bool) -> Result<Base, BackendError> {
        self.with().image(name, p, pull)
    }
    fn children(&mut self, parent: Option<&str>) -> Result<Vec<Base>, BackendError> {
        self.with().children(parent)
    }
    fn mount_image(&mut self, image: Option<&str>) -> Result<PathBuf, BackendError> {
        self.with().mount_image(image)
    }
    fn create(
        &mut self,
        parent: Option<&str>,
        run: &RunStep,
    ) -> Result<StepContainer, BackendError> {
        self.with().create(parent, run)
    }
    fn start(&mut self, step: &StepContainer, out: &mut dyn Write) -> Result<i64, BackendError> {
        // Let the other stages interleave with this one.
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.with().start(step, out)
    }
    fn mkdir(&mut self, step: &StepContainer, path: &str) -> Result<(), BackendError> {
        self.with().mkdir(step, path)
    }
    fn copy(
        &mut self,
        parent: Option<&str>,
        copies: &[CopySource],
    ) -> Result<StepContainer, BackendError> {
        self.with().copy(parent, copies)
    }
    fn commit(
        &mut self,
        parent: Option<&str>,
        step: Option<&StepContainer>,
        config: &ImageConfig,
    ) -> Result<Committed, BackendError> {
        self.with().commit(parent, step, config)
    }
    fn supports(&self, feature: crate::backend::Feature) -> bool {
        self.with().supports(feature)
    }
    fn remove(&mut self, step: &StepContainer) -> Result<(), BackendError> {
        self.with().remove(step)
    }
    fn tag(&mut self, image: &str, reference: &str) -> Result<(), BackendError> {
        self.with().tag(image, reference)
    }
    fn max_parallel_stages(&self) -> usize {
        self.limit
    }
    fn fork(&self) -> Option<crate::backend::Forked> {
        Some(crate::backend::Forked {
            backend: Box::new(self.clone()),
            stop: Box::new(|| {}),
        })
    }
}

fn run_forking(limit: usize, ctx: &Ctx, dockerfile: &str, opts: &BuildOptions) -> Outcome {
    let mut backend = Forking {
        fake: std::sync::Arc::new(std::sync::Mutex::new(Fake::with_busybox())),
        limit,
    };
    let loaded = crate::load("Dockerfile", dockerfile.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut sink = Sink::default();
    let result = build(&loaded, opts, ctx.dir.path(), &mut backend, &mut sink);
    Outcome {
        result,
        text: sink.text,
        aux: sink.aux,
    }
}

#[test]
fn stages_at_once_print_what_stages_in_turn_print() {
    let ctx = Ctx::new(&[("a.txt", "a\n")]);
    let df = "ARG V=1\n\
              FROM busybox AS one\nARG V\nRUN echo one $V\nRUN echo one again\n\
              FROM busybox AS two\nCOPY a.txt /a\nRUN echo two\n\
              FROM busybox AS three\nENV X=3\nRUN echo three\n\
              FROM busybox\nCOPY --from=one /run /one\nCOPY --from=two /a /a\nCOPY --from=2 /run /three\n";
    let opts = BuildOptions {
        build_args: BTreeMap::from([
            ("V".to_string(), Some("7".to_string())),
            ("NOPE".to_string(), Some("x".to_string())),
        ]),
        labels: BTreeMap::from([("l".to_string(), "v".to_string())]),
        ..BuildOptions::default()
    };
    let seq = run_forking(1, &ctx, df, &opts);
    let par = run_forking(4, &ctx, df, &opts);
    seq.id();
    par.id();
    assert_eq!(par.shape(), seq.shape());
    assert!(
        par.text.contains("ran: /bin/sh -c echo one $V"),
        "{}",
        par.text
    );
    assert!(
        par.text
            .contains("[Warning] One or more build-args [NOPE] were not consumed"),
        "{}",
        par.text
    );
    assert_eq!(par.aux.len(), 4);
    assert_eq!(par.aux.len(), seq.aux.len());

    // A later stage fails: the same error and output as in turn, and nothing of later stages.
    let df = "FROM busybox AS one\nRUN echo one\nRUN echo one again\n\
              FROM busybox AS two\nRUN exit 3\n\
              FROM busybox AS three\nRUN echo three\n\
              FROM busybox\nCOPY --from=one /run /one\nCOPY --from=two /run /two\nCOPY --from=three /run /3\n";
    let seq = run_forking(1, &ctx, df, &BuildOptions::default());
    let par = run_forking(4, &ctx, df, &BuildOptions::default());
    assert_eq!(par.err(), seq.err());
    assert_eq!(par.shape(), seq.shape());
    assert!(!par.text.contains("Step 6/"), "{}", par.text);
}
