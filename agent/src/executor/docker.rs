//! The Docker executor: a task is a container run through the Docker Engine
//! API (bollard, over `DOCKER_HOST` or the default socket).
//!
//! - prepare: the task's image, pulled when not on the node, then the
//!   container created (named `<service>.<slot>.<task id>` and labelled with
//!   the task, service and node, see [`config`]);
//! - start, wait (the engine's wait API), shutdown (`docker stop` with the
//!   grace period, then SIGKILL if anything is left), remove (the container
//!   and its anonymous volumes).
//! - health: the spec's check becomes the container's `Healthcheck` (none
//!   keeps the image's HEALTHCHECK); the engine runs it, and the controller
//!   follows `State.Health` by polling inspect, also for adopted containers.
//!
//! A restarted agent finds its containers by the `com.shoal.node.id` label: it
//! adopts the running ones and reports the ones that ended meanwhile. How a
//! task ended is recorded in `<data dir>/docker/exits/<task id>.json`, because
//! the engine knows an exit code but not whether the agent stopped the task on
//! purpose (a shutdown, not a failure); a container that exited with no
//! record ended while no agent watched, and its exit code comes from the
//! engine.
//!
//! Deciding which tasks run is the worker's; this module never restarts a
//! container (no restart policy) and never touches a container without its
//! own node's label.
//!
//! # Layout
//! - [`config`]: the container's name, labels, environment, command and
//!   limits, as plain functions of the task (and the command mapping).
//! - [`streams`]: a task's container logs and `docker exec` in it.
//! - `test_image` (tests only): builds the image the tests run.

pub mod config;
pub mod streams;
#[cfg(test)]
pub mod test_image;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as EngineError;
use bollard::models::{ContainerStateStatusEnum, ContainerSummary, ImageConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, RemoveContainerOptions, StatsOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use shoal_proto::v1::Task;
use tokio::sync::watch;

pub use config::{
    container_name, health, ContainerOptions, LABEL_NODE_ID, LABEL_SERVICE_ID, LABEL_SERVICE_NAME,
    LABEL_TASK_ID, LABEL_TASK_SLOT,
};

use super::{
    stop_grace, write_atomically, AbortOnDrop, Adopted, Controller, Executor, ExecutorError, Exit,
    RecordedExit, Usage,
};
use crate::health::{Health, HealthConfig};
use crate::secrets::Secrets;

/// Where the engine is when `DOCKER_HOST` is not set (bollard's default).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long `connect` waits for the engine: an agent must start (and say
/// why Docker tasks cannot run) rather than hang on a stuck engine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's own request timeout, for every request but `connect`'s and
/// `docker stop`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Added to the grace period for the stop request itself, which the engine
/// answers only once the container stopped.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// Pause before asking the engine again when a wait broke off (engine
/// restarting, connection lost) while the container still runs.
const WAIT_RETRY: Duration = Duration::from_secs(1);
/// How often a container's health status is read. The engine runs the check;
/// polling inspect is simpler than following its event stream, and a status
/// changes at most once per check interval.
const HEALTH_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "no Docker engine answers at {host}: {source}; start the engine or point DOCKER_HOST at it"
    )]
    NoEngine { host: String, source: EngineError },
    #[error("cannot create {}, where container exits are recorded: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The runtime `"docker"`.
pub struct DockerExecutor {
    node: Node,
    engine_version: String,
}

/// What the executor and every controller share: the engine, and whose
/// containers and exit records are this node's.
#[derive(Clone)]
struct Node {
    docker: Docker,
    node_id: String,
    exits_dir: PathBuf,
    /// Where granted secrets and configs are written; none: the executor
    /// refuses tasks that have grants.
    secrets: Option<Arc<Secrets>>,
}

impl DockerExecutor {
    /// Connects to the engine at `DOCKER_HOST` (or the default socket) and
    /// checks that it answers. Exits are recorded under `data_dir/docker`.
    pub async fn connect(data_dir: &Path, node_id: &str) -> Result<Self, DockerError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_string());
        let no_engine = |source| DockerError::NoEngine {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults()
            .map_err(no_engine)?
            .with_timeout(CONNECT_TIMEOUT);
        docker.ping().await.map_err(no_engine)?;
        // bollard speaks the newest API it knows; an older engine refuses
        // that, so settle on the highest version both speak.
        let docker = docker.negotiate_version().await.map_err(no_engine)?;
        let engine_version = docker
            .version()
            .await
            .map_err(no_engine)?
            .version
            .unwrap_or_default();
        let docker = docker.with_timeout(REQUEST_TIMEOUT);
        let exits_dir = data_dir.join("docker").join("exits");
        std::fs::create_dir_all(&exits_dir).map_err(|source| DockerError::DataDir {
            path: exits_dir.clone(),
            source,
        })?;
        Ok(DockerExecutor {
            node: Node {
                docker,
                node_id: node_id.to_string(),
                exits_dir,
                secrets: None,
            },
            engine_version,
        })
    }

    /// Binds granted secrets and configs from `secrets` into containers.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.node.secrets = Some(secrets);
        self
    }

    /// The engine's version, for the node's description (`engine_version`).
    pub fn engine_version(&self) -> &str {
        &self.engine_version
    }

    /// A controller for `task` with limits: [`Executor::controller`] with
    /// [`ContainerOptions`] (the default there).
    pub fn controller_with(&self, task: &Task, options: ContainerOptions) -> DockerController {
        DockerController {
            node: self.node.clone(),
            task_id: task.id.clone(),
            task: Some(task.clone()),
            options,
            container_id: None,
            health_watcher: None,
        }
    }

    /// The engine volumes shoal created for this node (those carrying its
    /// node label), with the tasks whose containers mount them.
    pub async fn volumes(&self) -> Vec<shoal_proto::v1::Volume> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!(
                "{}={}",
                config::LABEL_VOLUME_NODE,
                self.node.node_id
            )],
        )]);
        let listed = match self
            .node
            .docker
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(listed) => listed.volumes.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %engine_message(&e), "cannot list the engine's volumes");
                return Vec::new();
            }
        };
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        if let Ok(containers) = self.node.containers(None, Some("running")).await {
            for container in containers {
                let Some(task_id) = task_label(&container) else {
                    continue;
                };
                for mount in container.mounts.unwrap_or_default() {
                    if let Some(name) = mount.name {
                        users.entry(name).or_default().push(task_id.clone());
                    }
                }
            }
        }
        let mut volumes: Vec<shoal_proto::v1::Volume> = listed
            .into_iter()
            .map(|v| shoal_proto::v1::Volume {
                task_ids: users.remove(&v.name).unwrap_or_default(),
                name: v.name,
                driver: v.driver,
                runtime: "docker".into(),
                labels: v.labels,
                mountpoint: v.mountpoint,
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        volumes
    }

    /// Removes the engine volume `name` if shoal created it for this node;
    /// `Ok(false)` when there is none. The engine refuses one in use.
    pub async fn remove_volume(&self, name: &str) -> Result<bool, String> {
        let volume = match self.node.docker.inspect_volume(name).await {
            Ok(volume) => volume,
            Err(e) if status(&e) == Some(404) => return Ok(false),
            Err(e) => {
                return Err(format!(
                    "cannot inspect volume {name}: {}",
                    engine_message(&e)
                ))
            }
        };
        if volume.labels.get(config::LABEL_VOLUME_NODE) != Some(&self.node.node_id) {
            return Ok(false);
        }
        self.node
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
            .map(|()| true)
            .map_err(|e| format!("cannot remove volume {name}: {}", engine_message(&e)))
    }

    /// Controllers for this node's running containers (what [`Executor::adopt`]
    /// returns), skipping those whose exit is already recorded.
    pub async fn adopt_containers(&self) -> Vec<DockerController> {
        let containers = match self.node.containers(None, Some("running")).await {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers to adopt");
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        for container in containers {
            let (Some(id), Some(task_id)) = (container.id.clone(), task_label(&container)) else {
                continue;
            };
            if self
                .node
                .exit_file(&task_id)
                .is_some_and(|path| path.exists())
            {
                continue;
            }
            tracing::info!(task = %task_id, container = %id, "adopting a running container");
            adopted.push(DockerController {
                node: self.node.clone(),
                task_id,
                task: None,
                options: ContainerOptions::default(),
                container_id: Some(id),
                health_watcher: None,
            });
        }
        adopted
    }
}

#[tonic::async_trait]
impl Executor for DockerExecutor {
    fn runtime(&self) -> &'static str {
        "docker"
    }

    fn controller(&self, task: &Task) -> Box<dyn Controller> {
        // The spec's limits become the container's HostConfig limits; zero
        // means "no limit", as in Swarm.
        let limits = task
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.limits)
            .unwrap_or_default();
        let options = ContainerOptions {
            nano_cpus: (limits.nano_cpus > 0).then_some(limits.nano_cpus),
            memory_bytes: (limits.memory_bytes > 0).then_some(limits.memory_bytes),
            granted: Vec::new(),
        };
        Box::new(self.controller_with(task, options))
    }

    async fn adopt(&self) -> Vec<Adopted> {
        self.adopt_containers()
            .await
            .into_iter()
            .map(|controller| Adopted {
                task_id: controller.task_id.clone(),
                controller: Box::new(controller),
            })
            .collect()
    }

    async fn recorded_exits(&self) -> Vec<(String, RecordedExit)> {
        let mut exits = self.node.read_exit_files();
        let containers = match self.node.containers(None, None).await {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers for exits");
                Vec::new()
            }
        };
        for container in containers {
            let (Some(id), Some(task_id)) = (container.id.clone(), task_label(&container)) else {
                continue;
            };
            if exits.contains_key(&task_id) {
                continue;
            }
            let unwatched = match self.node.state(&id).await {
                Ok(Some(state)) => match state.status {
                    Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                        let code = state.exit_code.unwrap_or_default() as i32;
                        RecordedExit {
                            shutdown: false,
                            unhealthy: false,
                            exit_code: Some(code),
                            message: format!(
                                "the container exited ({code}) while the agent was not running"
                            ),
                        }
                    }
                    // An agent stopped between creating and starting it.
                    Some(ContainerStateStatusEnum::CREATED) => RecordedExit {
                        shutdown: false,
                        unhealthy: false,
                        exit_code: None,
                        message: "the container was created but never started: the agent \
                                  stopped before starting it"
                            .into(),
                    },
                    // Running ones are adopted; the rest are on their way.
                    _ => continue,
                },
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "cannot inspect a container");
                    continue;
                }
            };
            exits.insert(task_id, unwatched);
        }
        exits.into_iter().collect()
    }

    async fn remove(&self, task_id: &str) {
        self.node.remove_task(task_id).await;
    }

    /// From the engine's stats (one-shot, all containers at once): the
    /// engine knows its containers' cgroups whatever its cgroup driver and
    /// version, where the agent would have to guess their paths.
    async fn usage(&self, task_ids: &[String]) -> Vec<(String, Usage)> {
        let running = match self.node.containers(None, Some("running")).await {
            Ok(containers) => containers,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers to measure");
                return Vec::new();
            }
        };
        let wanted: Vec<(String, String)> = running
            .iter()
            .filter_map(|c| Some((task_label(c)?, c.id.clone()?)))
            .filter(|(task, _)| task_ids.contains(task))
            .collect();
        let reads = wanted.into_iter().map(|(task_id, container)| async move {
            let mut stats = self.node.docker.stats(
                &container,
                Some(StatsOptions {
                    stream: false,
                    one_shot: true,
                }),
            );
            let stats = stats.next().await?.ok()?;
            let cpu_ns = stats.cpu_stats?.cpu_usage?.total_usage?;
            let memory = stats.memory_stats.and_then(|m| {
                let inactive = m.stats.as_ref().and_then(|s| {
                    s.get("inactive_file")
                        .or_else(|| s.get("total_inactive_file"))
                        .copied()
                });
                Some(m.usage?.saturating_sub(inactive.unwrap_or(0)))
            });
            Some((
                task_id,
                Usage {
                    cpu_ns,
                    memory_bytes: memory,
                },
            ))
        });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// One task's container.
pub struct DockerController {
    node: Node,
    task_id: String,
    /// Absent for adopted containers: they are only watched and stopped.
    task: Option<Task>,
    options: ContainerOptions,
    container_id: Option<String>,
    /// Follows the container's health status, once asked for; stops with the
    /// controller.
    health_watcher: Option<AbortOnDrop>,
}

impl DockerController {
    /// The container's ID, once created (or adopted).
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    pub fn task_id(&self) -> &str {
        &self.task_id
    }
}

#[tonic::async_trait]
impl Controller for DockerController {
    async fn prepare(&mut self) -> Result<(), ExecutorError> {
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| ExecutorError::Failed("no task spec".into()))?;
        let spec = task.spec.clone().unwrap_or_default();
        if spec.image.trim().is_empty() {
            return Err(ExecutorError::Rejected("the task has no image".into()));
        }
        // The engine would take a bad test and fail every probe.
        HealthConfig::from_spec(spec.healthcheck.as_ref())
            .map_err(|e| ExecutorError::Rejected(e.to_string()))?;
        let image = self.node.image_config(&spec.image).await?;
        self.node.ensure_volumes(task).await?;
        if Secrets::has_grants(task) {
            let secrets = self.node.secrets.clone().ok_or_else(|| {
                ExecutorError::Rejected(
                    "this node keeps no secrets: the task's grants cannot be delivered".into(),
                )
            })?;
            self.options.granted = secrets.materialize(task).map_err(|e| {
                secrets.release(&task.id);
                ExecutorError::Failed(e)
            })?;
        }
        // A container left by an earlier attempt at this task (an agent that
        // stopped between create and start) would hold the name.
        self.node.remove_containers(&task.id).await;
        let grace = stop_grace(task);
        let body = config::create_body(
            task,
            &self.node.node_id,
            image.as_ref(),
            grace,
            &self.options,
        );
        let name = config::container_name(task);
        let created = self
            .node
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                let message = format!("cannot create container {name}: {}", engine_message(&e));
                // The engine refusing this config (400) is the task's fault;
                // anything else may well pass on a retry.
                if status(&e) == Some(400) {
                    ExecutorError::Rejected(message)
                } else {
                    ExecutorError::Failed(message)
                }
            })?;
        for warning in created.warnings {
            tracing::warn!(task = %task.id, %warning, "the engine warned when creating a container");
        }
        self.container_id = Some(created.id);
        Ok(())
    }

    async fn start(&mut self) -> Result<(), ExecutorError> {
        let id = self
            .container_id
            .as_deref()
            .ok_or_else(|| ExecutorError::Failed("start before prepare: no container".into()))?;
        self.node
            .docker
            .start_container(id, None)
            .await
            .map_err(|e| ExecutorError::Failed(engine_message(&e)))
    }

    async fn wait(&mut self) -> Exit {
        match self.container_id.as_deref() {
            Some(id) => self.node.wait_exit(id).await,
            None => Exit::Unknown,
        }
    }

    async fn shutdown(&mut self, grace: Duration) -> Exit {
        let Some(id) = self.container_id.clone() else {
            return Exit::Unknown;
        };
        // The engine answers the stop request only once the container is
        // stopped, which can take the whole grace period.
        let docker = self.node.docker.clone().with_timeout(grace + STOP_SLACK);
        let stop = StopContainerOptions {
            t: Some(config::grace_seconds(grace)),
            // The container's own stop signal, set at create.
            signal: None,
        };
        match docker.stop_container(&id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(404) => return Exit::Unknown,
            Err(e) => tracing::warn!(container = %id, error = %e, "docker stop failed; killing"),
        }
        // A stop that failed or timed out leaves it running: kill it.
        if let Ok(Some(state)) = self.node.state(&id).await {
            if state.running == Some(true) {
                let kill = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                if let Err(e) = self.node.docker.kill_container(&id, Some(kill)).await {
                    tracing::warn!(container = %id, error = %e, "cannot kill a container");
                }
            }
        }
        self.node.wait_exit(&id).await
    }

    async fn netns_pid(&mut self) -> Option<u32> {
        let id = self.container_id.as_deref()?;
        let state = self.node.state(id).await.ok()??;
        state
            .pid
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
    }

    async fn health(&mut self) -> Option<watch::Receiver<Health>> {
        let id = self.container_id.clone()?;
        // The container's own configuration: the spec's check merged with the
        // image's HEALTHCHECK by the engine.
        let inspect = match self
            .node
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot inspect a container for its health check; not watching it");
                return None;
            }
        };
        if !config::has_healthcheck(inspect.config.as_ref().and_then(|c| c.healthcheck.as_ref())) {
            return None;
        }
        let (sender, receiver) = watch::channel(Health::Starting);
        let node = self.node.clone();
        let watcher = async move {
            loop {
                match node.state(&id).await {
                    // Only a running container's status counts: a stopped
                    // one's says nothing about the task, which wait() reports.
                    Ok(Some(state)) if state.running == Some(true) => {
                        if let Some(now) = config::health(&state) {
                            sender.send_if_modified(|current| {
                                let changed = *current != now;
                                *current = now;
                                changed
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "cannot read a container's health")
                    }
                }
                tokio::select! {
                    _ = sender.closed() => return,
                    _ = tokio::time::sleep(HEALTH_POLL) => {}
                }
            }
        };
        self.health_watcher = Some(AbortOnDrop(tokio::spawn(watcher)));
        Some(receiver)
    }

    async fn record_exit(&mut self, exit: &RecordedExit) {
        self.node.record_exit(&self.task_id, exit);
        // The task ended: its secrets go with it.
        if let Some(secrets) = &self.node.secrets {
            secrets.release(&self.task_id);
        }
    }

    async fn remove(&mut self) {
        self.node.remove_task(&self.task_id).await;
    }
}

impl Node {
    /// This node's containers, all or only those of one task, in any state
    /// or only in `status`.
    async fn containers(
        &self,
        task_id: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let mut labels = vec![format!("{LABEL_NODE_ID}={}", self.node_id)];
        labels.extend(task_id.map(|id| format!("{LABEL_TASK_ID}={id}")));
        let mut filters = HashMap::from([("label".to_string(), labels)]);
        if let Some(status) = status {
            filters.insert("status".to_string(), vec![status.to_string()]);
        }
        self.docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
    }

    /// A container's state; `None` when there is no such container.
    async fn state(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerState>, EngineError> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => Ok(Some(inspect.state.unwrap_or_default())),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the task's named volumes that the engine does not have yet,
    /// labelled (stack, node); refuses a volume of that name that exists
    /// with another driver: it is another volume, and the task must not
    /// quietly write into it.
    async fn ensure_volumes(&self, task: &Task) -> Result<(), ExecutorError> {
        for mount in config::named_volumes(task) {
            let driver = config::volume_driver(mount);
            match self.docker.inspect_volume(&mount.source).await {
                Ok(existing) if existing.driver != driver => {
                    return Err(ExecutorError::Rejected(format!(
                        "volume {:?} already exists on this node with driver {}, not {driver}: \
                         use another volume name, or remove it (shoal volume rm {})",
                        mount.source, existing.driver, mount.source
                    )))
                }
                Ok(_) => {}
                Err(e) if status(&e) == Some(404) => {
                    self.docker
                        .create_volume(config::volume_request(task, mount, &self.node_id))
                        .await
                        .map_err(|e| {
                            ExecutorError::Rejected(format!(
                                "cannot create volume {:?} (driver {driver}): {}",
                                mount.source,
                                engine_message(&e)
                            ))
                        })?;
                    tracing::info!(task = %task.id, volume = %mount.source, "created a volume");
                }
                Err(e) => {
                    return Err(ExecutorError::Failed(format!(
                        "cannot inspect volume {:?}: {}",
                        mount.source,
                        engine_message(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    /// The image's configuration, pulling the image when the node lacks it.
    /// A failed pull rejects the task, in the engine's words, as Swarm does:
    /// the task cannot run on this node as it is, and the orchestrator's
    /// replacement task tries the pull again.
    async fn image_config(&self, image: &str) -> Result<Option<ImageConfig>, ExecutorError> {
        let missing = match self.docker.inspect_image(image).await {
            Ok(inspect) => return Ok(inspect.config),
            Err(e) if status(&e) == Some(404) => engine_message(&e),
            Err(e) => {
                return Err(ExecutorError::Failed(format!(
                    "cannot inspect image {image}: {}",
                    engine_message(&e)
                )))
            }
        };
        let (from_image, tag) = config::pull_reference(image);
        tracing::info!(%image, "pulling an image");
        let mut pull = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(from_image),
                tag,
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(progress) = pull.next().await {
            if let Err(e) = progress {
                return Err(ExecutorError::Rejected(format!(
                    "{missing}; pulling it failed: {}",
                    engine_message(&e)
                )));
            }
        }
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.config),
            Err(e) => Err(ExecutorError::Rejected(format!(
                "{}; the pull reported no error",
                engine_message(&e)
            ))),
        }
    }

    /// Waits for the container to stop. Never hangs on a container that is
    /// gone: a removed container ends the wait with [`Exit::Unknown`].
    /// Cancel-safe: dropping it drops only a request.
    async fn wait_exit(&self, id: &str) -> Exit {
        loop {
            let mut wait = self.docker.wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "not-running".into(),
                }),
            );
            match wait.next().await {
                Some(Ok(response)) => return Exit::Code(response.status_code as i32),
                // bollard turns a non-zero exit into an error.
                Some(Err(EngineError::DockerContainerWaitError { code, .. })) => {
                    return Exit::Code(code as i32)
                }
                Some(Err(e)) if status(&e) == Some(404) => return Exit::Unknown,
                broken => {
                    // The engine restarting, the connection lost: ask what
                    // became of the container before waiting again.
                    match self.state(id).await {
                        Ok(None) => return Exit::Unknown,
                        Ok(Some(state)) if state.running != Some(true) => {
                            return Exit::Code(state.exit_code.unwrap_or_default() as i32)
                        }
                        Ok(Some(_)) => {}
                        Err(e) => tracing::warn!(
                            container = %id, error = %e, wait = ?broken.map(|r| r.err()),
                            "waiting for a container broke off; asking again"
                        ),
                    }
                    tokio::time::sleep(WAIT_RETRY).await;
                }
            }
        }
    }

    /// The task's exit record; `None` for an ID that is not a plain file name.
    fn exit_file(&self, task_id: &str) -> Option<PathBuf> {
        let plain = !task_id.is_empty()
            && !task_id.starts_with('.')
            && !task_id.contains(['/', '\\', '\0']);
        plain.then(|| self.exits_dir.join(format!("{task_id}.json")))
    }

    fn record_exit(&self, task_id: &str, exit: &RecordedExit) {
        let Some(path) = self.exit_file(task_id) else {
            return;
        };
        let written = serde_json::to_vec(exit)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot record a task's exit");
        }
    }

    fn read_exit_files(&self) -> HashMap<String, RecordedExit> {
        let Ok(entries) = std::fs::read_dir(&self.exits_dir) else {
            return HashMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let task_id = name.strip_suffix(".json")?.to_string();
                let exit = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
                Some((task_id, exit))
            })
            .collect()
    }

    /// Removes the task's containers (with their anonymous volumes) and its
    /// exit record.
    async fn remove_task(&self, task_id: &str) {
        if let Some(secrets) = &self.secrets {
            secrets.release(task_id);
        }
        self.remove_containers(task_id).await;
        if let Some(path) = self.exit_file(task_id) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an exit record")
                }
                _ => {}
            }
        }
    }

    async fn remove_containers(&self, task_id: &str) {
        let containers = match self.containers(Some(task_id), None).await {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(task = %task_id, error = %e, "cannot list a task's containers");
                return;
            }
        };
        for id in containers.into_iter().filter_map(|c| c.id) {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match self.docker.remove_container(&id, Some(options)).await {
                Err(e) if status(&e) != Some(404) => {
                    tracing::warn!(task = %task_id, container = %id, error = %e, "cannot remove a container")
                }
                _ => {}
            }
        }
    }
}

fn task_label(container: &ContainerSummary) -> Option<String> {
    container.labels.as_ref()?.get(LABEL_TASK_ID).cloned()
}

/// The engine's HTTP status for an error it answered.
fn status(e: &EngineError) -> Option<u16> {
    match e {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// What the engine said, without bollard's wrapping ("Docker responded with
/// status code 404: …"): it is what a user sees in `service ps`.
fn engine_message(e: &EngineError) -> String {
    match e {
        EngineError::DockerResponseServerError { message, .. } => message.clone(),
        EngineError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}
