//! Building the L0 and L1 images through the API, unless they exist already.
//!
//! One build renders both Dockerfiles, packs one in-memory context and sends it twice: L0 from
//! the base image, then L1 from L0. The L1 image carries the `ai.terok.agents` label (from its
//! Dockerfile) and `/etc/terok/installed.env`; the family is only detected when something has to
//! be built, so images of an unusual base built once with `--family` are reused without it.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;

use super::context::{missing_scripts, CaCert, Context, L0_DOCKERFILE, L1_DOCKERFILE};
use super::family::{detect_family, FamilyError};
use super::progress::{Display, Progress};
use super::render::{help_fragments, render_l0, render_l1, RenderError, Templates};
use super::sources::Sources;
use super::tags::{l0_tag, l1_alias, l1_tag, normalize_base_image};
use crate::launcher::roster::{Roster, RosterError, Selection};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The base image (blank: the default).
    pub base: String,
    /// `deb` or `rpm`; detected from the base image when unset.
    pub family: Option<String>,
    /// Where packages come from.
    pub sources: Sources,
    /// Extra certificate authorities the images trust.
    pub ca_certs: Vec<CaCert>,
    pub selection: Selection,
    /// Build even when the images exist, without the layer cache.
    pub rebuild: bool,
    /// Only check: an image that would be built is an error ([`BuildError::NotBuilt`]).
    pub check_only: bool,
    pub templates: Templates,
    /// How build output is shown (`None`: a status line when stderr is a terminal).
    pub display: Option<Display>,
}

impl BuildRequest {
    /// The bundled templates, the default base, the given selection.
    pub fn new(selection: Selection) -> BuildRequest {
        BuildRequest {
            base: String::new(),
            family: None,
            sources: Sources::default(),
            ca_certs: Vec::new(),
            selection,
            rebuild: false,
            check_only: false,
            templates: Templates::bundled(),
            display: None,
        }
    }
}

/// The images a build produced or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub l0: String,
    pub l1: String,
    /// The resolved selection (sorted), as in the label.
    pub agents: Vec<String>,
    /// Whether anything was built (false: both images existed).
    pub built: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Family(#[from] FamilyError),
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(
        "the install snippets need scripts this build does not ship: {}",
        names.join(", ")
    )]
    MissingScripts { names: Vec<String> },
    #[error("cannot pack the build context: {0}")]
    Context(std::io::Error),
    #[error("cannot build {tag}: {message}")]
    Step { tag: String, message: String },
    #[error("{}", describe_not_built(needed))]
    NotBuilt { needed: Vec<(String, &'static str)> },
    #[error("Podman API error while building {tag}: {source}")]
    Api {
        tag: String,
        source: bollard::errors::Error,
    },
}

fn describe_not_built(needed: &[(String, &'static str)]) -> String {
    let parts: Vec<String> = needed
        .iter()
        .map(|(tag, why)| format!("{tag} is {why}"))
        .collect();
    parts.join("; ")
}

/// Whether `image` exists in the local store.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, bollard::errors::Error> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if crate::podman::is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The label holding the fingerprint of the build context an image was built from: an image
/// whose scripts or templates changed since is built again.
pub const LABEL_CONTEXT: &str = "ai.terok.context";

/// The [`LABEL_CONTEXT`] of `image`: `None` when there is no such image, `Some("")` when it
/// carries no such label.
async fn context_label(
    docker: &Docker,
    image: &str,
) -> Result<Option<String>, bollard::errors::Error> {
    match docker.inspect_image(image).await {
        Ok(inspect) => Ok(Some(
            inspect
                .config
                .and_then(|c| c.labels)
                .and_then(|mut l| l.remove(LABEL_CONTEXT))
                .unwrap_or_default(),
        )),
        Err(e) if crate::podman::is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes sure the L0 and L1 images of `req` exist and were built from the current context,
/// building what is missing or out of date (everything, with `rebuild`). Progress goes to stderr.
pub async fn ensure_images(
    docker: &Docker,
    roster: &Roster,
    req: &BuildRequest,
) -> Result<ImageSet, BuildError> {
    let base = normalize_base_image(&req.base).to_owned();
    let agents = roster.resolve_selection(&req.selection)?;
    let l0 = l0_tag(&base);
    let l1 = l1_tag(&base, &agents);
    let api = |tag: &str| {
        let tag = tag.to_owned();
        move |source| BuildError::Api { tag, source }
    };
    let l0_label = context_label(docker, &l0).await.map_err(api(&l0))?;
    let l1_label = context_label(docker, &l1).await.map_err(api(&l1))?;
    let family = match detect_family(&base, req.family.as_deref()) {
        Ok(family) => family,
        // Images that exist serve a base whose family is not known here.
        Err(_) if l0_label.is_some() && l1_label.is_some() && !req.rebuild => {
            return Ok(ImageSet {
                l0,
                l1,
                agents,
                built: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let l0_file = render_l0(&req.templates, &base, family)?;
    let l1_file = render_l1(&req.templates, roster, &l0, family, req.sources, &agents)?;
    let mut ctx = Context::standard(&l0_file, &l1_file, &help_fragments(roster, &agents));
    ctx.add_ca_certs(&req.ca_certs);
    // What each image was built from: L0 from everything but L1's Dockerfile, L1 from all.
    let l0_print = ctx.fingerprint(&[L1_DOCKERFILE]);
    let l1_print = ctx.fingerprint(&[]);
    let current = |label: &Option<String>, print: &str| label.as_deref() == Some(print);
    let have_l0 = current(&l0_label, &l0_print);
    let have_l1 = have_l0 && current(&l1_label, &l1_print);
    if have_l1 && !req.rebuild {
        return Ok(ImageSet {
            l0,
            l1,
            agents,
            built: false,
        });
    }
    if req.check_only {
        let needed = [(&l0, &l0_label, have_l0), (&l1, &l1_label, have_l1)]
            .into_iter()
            .filter(|(_, _, fresh)| !fresh || req.rebuild)
            .map(|(tag, label, _)| {
                let why = if label.is_some() {
                    "out of date"
                } else {
                    "missing"
                };
                (tag.clone(), why)
            })
            .collect();
        return Err(BuildError::NotBuilt { needed });
    }
    for (tag, label, fresh) in [(&l0, &l0_label, have_l0), (&l1, &l1_label, have_l1)] {
        if label.is_some() && !fresh && !req.rebuild {
            eprintln!("{tag} was built from other scripts or templates: building it again");
        }
    }
    let missing = missing_scripts(&l1_file, &ctx);
    if !missing.is_empty() {
        return Err(BuildError::MissingScripts {
            names: missing.into_iter().collect(),
        });
    }
    let archive = ctx.to_tar().map_err(BuildError::Context)?;
    let display = req.display.unwrap_or_else(|| {
        if std::io::stderr().is_terminal() {
            Display::Status
        } else {
            Display::Lines
        }
    });

    if !have_l0 || req.rebuild {
        let args = HashMap::from([("BASE_IMAGE".to_owned(), base.clone())]);
        let stage = Stage {
            name: "L0",
            dockerfile: L0_DOCKERFILE,
            tag: &l0,
            args,
            fingerprint: &l0_print,
        };
        stage
            .build_retrying(docker, &archive, req.rebuild, display)
            .await?;
    }
    let cache_bust = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let args = HashMap::from([
        ("BASE_IMAGE".to_owned(), l0.clone()),
        ("AGENT_CACHE_BUST".to_owned(), cache_bust.to_string()),
    ]);
    let stage = Stage {
        name: "L1",
        dockerfile: L1_DOCKERFILE,
        tag: &l1,
        args,
        fingerprint: &l1_print,
    };
    stage
        .build_retrying(docker, &archive, req.rebuild, display)
        .await?;
    if req.selection == Selection::All {
        tag(docker, &l1, &l1_alias(&base)).await?;
    }
    Ok(ImageSet {
        l0,
        l1,
        agents,
        built: true,
    })
}

/// Adds the tag `alias` (`repo:tag`) to `image`.
async fn tag(docker: &Docker, image: &str, alias: &str) -> Result<(), BuildError> {
    let qualified = local_name(alias);
    let (repo, tag) = qualified.rsplit_once(':').unwrap_or((&qualified, "latest"));
    let options = TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    docker
        .tag_image(image, Some(options))
        .await
        .map_err(|source| BuildError::Api {
            tag: alias.to_owned(),
            source,
        })
}

/// `name` with an explicit `localhost/` registry when it names none. Podman's own CLI stores
/// unqualified build tags under `localhost/`, while its Docker-compatible API would file them under
/// `docker.io/library/`; being explicit keeps the images where other Podman tools look for them.
pub fn local_name(name: &str) -> String {
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name.to_owned()
    } else {
        format!("localhost/{name}")
    }
}

/// How often the status line is redrawn while the builder is quiet.
const TICK: Duration = Duration::from_millis(500);

/// One image of a build: which Dockerfile of the context, which tag, which build arguments,
/// and the context's fingerprint for the image's [`LABEL_CONTEXT`].
struct Stage<'a> {
    name: &'static str,
    dockerfile: &'static str,
    tag: &'a str,
    args: HashMap<String, String>,
    fingerprint: &'a str,
}

impl Stage<'_> {
    /// [`Stage::build`], once more without the layer cache when the engine lost a cached layer
    /// under the build (Podman reports "layer not known" when an image whose layers the cache
    /// lookup found is removed meanwhile, e.g. by a concurrent `rmi`).
    async fn build_retrying(
        &self,
        docker: &Docker,
        archive: &[u8],
        no_cache: bool,
        display: Display,
    ) -> Result<(), BuildError> {
        match self.build(docker, archive, no_cache, display).await {
            Err(BuildError::Step { message, .. })
                if !no_cache && message.contains("layer not known") =>
            {
                tracing::warn!(
                    tag = self.tag,
                    "a cached layer vanished during the build; building again without the cache"
                );
                self.build(docker, archive, true, display).await
            }
            other => other,
        }
    }

    /// Sends the context, shows the builder's output and reports the first error it streams.
    async fn build(
        &self,
        docker: &Docker,
        archive: &[u8],
        no_cache: bool,
        display: Display,
    ) -> Result<(), BuildError> {
        let (dockerfile, tag, args, stage) = (self.dockerfile, self.tag, &self.args, self.name);
        let labels = HashMap::from([(LABEL_CONTEXT.to_owned(), self.fingerprint.to_owned())]);
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(&local_name(tag))
            .buildargs(args)
            .labels(&labels)
            .nocache(no_cache)
            .rm(true)
            .forcerm(true)
            .build();
        let body = bollard::body_full(bytes::Bytes::copy_from_slice(archive));
        let mut stream = docker.build_image(options, None, Some(body));
        let mut progress = Progress::new(std::io::stderr(), display, format!("{stage} {tag}"));
        let mut ticker = tokio::time::interval(TICK);
        let failure = loop {
            tokio::select! {
                item = stream.next() => match item {
                    None => break None,
                    Some(Ok(info)) => {
                        if let Some(text) = &info.stream {
                            progress.feed(text);
                        }
                        let error = info
                            .error_detail
                            .as_ref()
                            .and_then(|d| d.message.clone());
                        if let Some(message) = error {
                            break Some(message);
                        }
                    }
                    Some(Err(e)) => break Some(stream_error_message(e)),
                },
                _ = ticker.tick() => progress.tick(),
            }
        };
        match failure {
            None => {
                progress.succeeded(tag);
                let _ = std::io::stderr().flush();
                Ok(())
            }
            Some(message) => {
                progress.failed(&message);
                Err(BuildError::Step {
                    tag: tag.to_owned(),
                    message,
                })
            }
        }
    }
}

fn stream_error_message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_name;

    #[test]
    fn unqualified_tags_go_to_localhost() {
        assert_eq!(
            local_name("terok-l0:ubuntu-24.04"),
            "localhost/terok-l0:ubuntu-24.04"
        );
        assert_eq!(local_name("localhost/terok-l0:x"), "localhost/terok-l0:x");
        assert_eq!(local_name("quay.io/a/b:c"), "quay.io/a/b:c");
        assert_eq!(local_name("registry:5000/b:c"), "registry:5000/b:c");
        assert_eq!(local_name("library/b:c"), "localhost/library/b:c");
    }
}
