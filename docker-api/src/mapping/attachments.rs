//! What a task is attached to, both ways: published ports and the endpoint
//! mode (`EndpointSpec`), overlay networks (`TaskTemplate.Networks`), mounts
//! and `ReadOnly` (`ContainerSpec.Mounts`), and secret and config grants
//! (`ContainerSpec.Secrets|Configs`).
//!
//! shoal → Docker writes what shoal stores, no defaults filled in, so a spec
//! read and sent back is the same spec. Docker → shoal maps every field
//! shoal has; what it has not is refused by name when running without it
//! would change what the task can reach or rely on (SCTP, image mounts,
//! subpaths, credential specs), and otherwise reported in `Warnings`.

use bollard::models as d;
use shoal_proto::v1 as s;

use super::spec::Verdict;

// ---- ports and the endpoint ----

pub fn port_to_docker(p: &s::PortConfig) -> d::EndpointPortConfig {
    use d::EndpointPortConfigProtocolEnum as P;
    use d::EndpointPortConfigPublishModeEnum as M;
    d::EndpointPortConfig {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        protocol: Some(match p.protocol() {
            s::PortProtocol::Tcp => P::TCP,
            s::PortProtocol::Udp => P::UDP,
        }),
        target_port: Some(i64::from(p.target_port)),
        published_port: (p.published_port != 0).then(|| i64::from(p.published_port)),
        publish_mode: Some(match p.publish_mode() {
            s::PublishMode::Ingress => M::INGRESS,
            s::PublishMode::Host => M::HOST,
        }),
    }
}

fn port_number(v: &mut Verdict, n: Option<i64>, field: &str) -> u32 {
    match n {
        None => 0,
        Some(n) if (0..=65535).contains(&n) => n as u32,
        Some(n) => {
            v.refused
                .push(format!("{field} {n} is not a port (0–65535)"));
            0
        }
    }
}

pub(crate) fn port_from_docker(v: &mut Verdict, p: &d::EndpointPortConfig) -> s::PortConfig {
    use d::EndpointPortConfigProtocolEnum as P;
    use d::EndpointPortConfigPublishModeEnum as M;
    let mut port = s::PortConfig {
        name: p.name.clone().unwrap_or_default(),
        target_port: port_number(v, p.target_port, "EndpointSpec.Ports.TargetPort"),
        published_port: port_number(v, p.published_port, "EndpointSpec.Ports.PublishedPort"),
        ..Default::default()
    };
    if port.target_port == 0 {
        v.refused
            .push("EndpointSpec.Ports: a target port is required (--publish 8080:80)".into());
    }
    port.set_protocol(match p.protocol {
        None | Some(P::EMPTY) | Some(P::TCP) => s::PortProtocol::Tcp,
        Some(P::UDP) => s::PortProtocol::Udp,
        Some(P::SCTP) => {
            v.refused.push(format!(
                "EndpointSpec.Ports {}/sctp (shoal publishes tcp and udp ports)",
                port.target_port
            ));
            s::PortProtocol::Tcp
        }
    });
    port.set_publish_mode(match p.publish_mode {
        Some(M::HOST) => s::PublishMode::Host,
        _ => s::PublishMode::Ingress,
    });
    port
}

pub fn endpoint_spec_to_docker(e: &s::EndpointSpec) -> d::EndpointSpec {
    d::EndpointSpec {
        mode: Some(match e.mode() {
            s::ResolutionMode::Vip => d::EndpointSpecModeEnum::VIP,
            s::ResolutionMode::Dnsrr => d::EndpointSpecModeEnum::DNSRR,
        }),
        ports: (!e.ports.is_empty()).then(|| e.ports.iter().map(port_to_docker).collect()),
    }
}

pub(crate) fn endpoint_spec_from_docker(v: &mut Verdict, e: &d::EndpointSpec) -> s::EndpointSpec {
    let mut spec = s::EndpointSpec {
        ports: e
            .ports
            .iter()
            .flatten()
            .map(|p| port_from_docker(v, p))
            .collect(),
        ..Default::default()
    };
    spec.set_mode(match e.mode {
        Some(d::EndpointSpecModeEnum::DNSRR) => s::ResolutionMode::Dnsrr,
        _ => s::ResolutionMode::Vip,
    });
    spec
}

/// The service's `Endpoint` as `docker service inspect` shows it: the spec,
/// the ports with the allocated published numbers, the virtual IPs.
pub fn endpoint_to_docker(
    spec: Option<&s::EndpointSpec>,
    e: Option<&s::Endpoint>,
) -> d::ServiceEndpoint {
    let e = e.cloned().unwrap_or_default();
    d::ServiceEndpoint {
        spec: Some(spec.map(endpoint_spec_to_docker).unwrap_or_default()),
        ports: (!e.ports.is_empty()).then(|| e.ports.iter().map(port_to_docker).collect()),
        virtual_ips: (!e.virtual_ips.is_empty()).then(|| {
            e.virtual_ips
                .iter()
                .map(|vip| d::ServiceEndpointVirtualIps {
                    network_id: Some(vip.network_id.clone()),
                    addr: Some(vip.addr.clone()),
                })
                .collect()
        }),
    }
}

// ---- networks ----

pub fn networks_to_docker(
    networks: &[s::NetworkAttachmentConfig],
) -> Option<Vec<d::NetworkAttachmentConfig>> {
    (!networks.is_empty()).then(|| {
        networks
            .iter()
            .map(|n| d::NetworkAttachmentConfig {
                target: Some(n.target.clone()),
                aliases: (!n.aliases.is_empty()).then(|| n.aliases.clone()),
                driver_opts: None,
            })
            .collect()
    })
}

/// `TaskTemplate.Networks` and the deprecated top-level `Networks` (old
/// clients), in order, each once. Targets may be names (the CLI sends
/// `demo_default`); the control API resolves them to IDs.
pub(crate) fn networks_from_docker(
    v: &mut Verdict,
    top_level: Option<&Vec<d::NetworkAttachmentConfig>>,
    template: Option<&Vec<d::NetworkAttachmentConfig>>,
) -> Vec<s::NetworkAttachmentConfig> {
    let mut out: Vec<s::NetworkAttachmentConfig> = Vec::new();
    for n in template
        .into_iter()
        .flatten()
        .chain(top_level.into_iter().flatten())
    {
        let target = n.target.clone().unwrap_or_default();
        if target.is_empty() {
            v.refused
                .push("TaskTemplate.Networks: a network needs a Target".into());
            continue;
        }
        v.ignore_if(
            &n.driver_opts,
            &format!("TaskTemplate.Networks {target} DriverOpts"),
        );
        if out.iter().any(|o| o.target == target) {
            continue;
        }
        out.push(s::NetworkAttachmentConfig {
            target,
            aliases: n.aliases.clone().unwrap_or_default(),
        });
    }
    out
}

// ---- mounts ----

pub fn mount_to_docker(m: &s::Mount) -> d::Mount {
    let (typ, volume_options, tmpfs_options) = match m.r#type() {
        s::MountType::Volume => {
            let driver = (!m.volume_driver.is_empty() || !m.volume_opts.is_empty()).then(|| {
                d::MountVolumeOptionsDriverConfig {
                    name: (!m.volume_driver.is_empty()).then(|| m.volume_driver.clone()),
                    options: (!m.volume_opts.is_empty()).then(|| m.volume_opts.clone()),
                }
            });
            let options =
                (driver.is_some() || !m.volume_labels.is_empty()).then(|| d::MountVolumeOptions {
                    labels: (!m.volume_labels.is_empty()).then(|| m.volume_labels.clone()),
                    driver_config: driver,
                    ..Default::default()
                });
            (d::MountType::VOLUME, options, None)
        }
        s::MountType::Bind => (d::MountType::BIND, None, None),
        s::MountType::Tmpfs => {
            let options = (m.tmpfs_size != 0 || m.tmpfs_mode != 0).then(|| d::MountTmpfsOptions {
                size_bytes: (m.tmpfs_size != 0).then_some(m.tmpfs_size),
                mode: (m.tmpfs_mode != 0).then_some(i64::from(m.tmpfs_mode)),
                options: None,
            });
            (d::MountType::TMPFS, None, options)
        }
    };
    d::Mount {
        target: Some(m.target.clone()),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        typ: Some(typ),
        read_only: m.readonly.then_some(true),
        volume_options,
        tmpfs_options,
        ..Default::default()
    }
}

pub(crate) fn mount_from_docker(v: &mut Verdict, m: &d::Mount) -> s::Mount {
    let target = m.target.clone().unwrap_or_default();
    let field = format!("ContainerSpec.Mounts {target}");
    let mut mount = s::Mount {
        source: m.source.clone().unwrap_or_default(),
        target: target.clone(),
        readonly: m.read_only.unwrap_or(false),
        ..Default::default()
    };
    v.ignore_if(
        &m.consistency.as_ref().filter(|c| *c != "default"),
        &format!("{field} Consistency"),
    );
    v.refuse_if(
        &m.image_options,
        &format!("{field} ImageOptions"),
        "shoal mounts volumes, binds and tmpfs",
    );
    let typ = match m.typ {
        None | Some(d::MountType::VOLUME) => s::MountType::Volume,
        Some(d::MountType::BIND) => s::MountType::Bind,
        Some(d::MountType::TMPFS) => s::MountType::Tmpfs,
        Some(other) => {
            v.refused.push(format!(
                "{field} type {other:?} (shoal mounts volume, bind and tmpfs)"
            ));
            s::MountType::Volume
        }
    };
    mount.set_type(typ);
    if let Some(o) = &m.volume_options {
        if typ != s::MountType::Volume {
            v.refused
                .push(format!("{field}: VolumeOptions on a {typ:?} mount"));
        }
        v.ignore_if(
            &o.no_copy,
            &format!("{field} VolumeOptions.NoCopy (volume-nocopy)"),
        );
        v.refuse_if(
            &o.subpath,
            &format!("{field} VolumeOptions.Subpath"),
            "shoal mounts a whole volume",
        );
        mount.volume_labels = o.labels.clone().unwrap_or_default();
        if let Some(driver) = &o.driver_config {
            mount.volume_driver = driver.name.clone().unwrap_or_default();
            mount.volume_opts = driver.options.clone().unwrap_or_default();
        }
    }
    if let Some(b) = &m.bind_options {
        // rprivate is Docker's default propagation, not a request.
        let propagation = b
            .propagation
            .filter(|p| *p != d::MountBindOptionsPropagationEnum::RPRIVATE);
        v.ignore_if(&propagation, &format!("{field} BindOptions.Propagation"));
        v.ignore_if(
            &b.non_recursive,
            &format!("{field} BindOptions.NonRecursive"),
        );
        v.ignore_if(
            &b.create_mountpoint,
            &format!("{field} BindOptions.CreateMountpoint"),
        );
        v.ignore_if(
            &b.read_only_non_recursive,
            &format!("{field} BindOptions.ReadOnlyNonRecursive"),
        );
        v.ignore_if(
            &b.read_only_force_recursive,
            &format!("{field} BindOptions.ReadOnlyForceRecursive"),
        );
    }
    if let Some(t) = &m.tmpfs_options {
        if typ != s::MountType::Tmpfs {
            v.refused
                .push(format!("{field}: TmpfsOptions on a {typ:?} mount"));
        }
        v.ignore_if(&t.options, &format!("{field} TmpfsOptions.Options"));
        mount.tmpfs_size = match t.size_bytes {
            Some(n) if n < 0 => {
                v.refused.push(format!(
                    "{field} TmpfsOptions.SizeBytes must not be negative"
                ));
                0
            }
            n => n.unwrap_or(0),
        };
        mount.tmpfs_mode = match t.mode {
            Some(n) if !(0..=0o7777).contains(&n) => {
                v.refused.push(format!(
                    "{field} TmpfsOptions.Mode {n:o} is not a file mode"
                ));
                0
            }
            n => n.unwrap_or(0) as u32,
        };
    }
    mount
}

// ---- secrets and configs ----

/// `None` stays `None` both ways, so a grant read and sent back is unchanged.
fn file_to_docker(f: &Option<s::FileTarget>) -> Option<d::TaskSpecContainerSpecFile> {
    let f = f.clone()?;
    Some(d::TaskSpecContainerSpecFile {
        name: (!f.name.is_empty()).then_some(f.name),
        uid: (!f.uid.is_empty()).then_some(f.uid),
        gid: (!f.gid.is_empty()).then_some(f.gid),
        mode: (f.mode != 0).then_some(f.mode),
    })
}

fn file_from_docker(
    name: &Option<String>,
    uid: &Option<String>,
    gid: &Option<String>,
    mode: Option<u32>,
) -> s::FileTarget {
    s::FileTarget {
        name: name.clone().unwrap_or_default(),
        uid: uid.clone().unwrap_or_default(),
        gid: gid.clone().unwrap_or_default(),
        mode: mode.unwrap_or(0),
    }
}

pub fn secret_to_docker(r: &s::SecretReference) -> d::TaskSpecContainerSpecSecrets {
    d::TaskSpecContainerSpecSecrets {
        file: file_to_docker(&r.file),
        secret_id: Some(r.secret_id.clone()),
        secret_name: Some(r.secret_name.clone()),
    }
}

pub(crate) fn secret_from_docker(
    v: &mut Verdict,
    r: &d::TaskSpecContainerSpecSecrets,
) -> s::SecretReference {
    let id = r
        .secret_id
        .clone()
        .or_else(|| r.secret_name.clone())
        .unwrap_or_default();
    if id.is_empty() {
        v.refused
            .push("ContainerSpec.Secrets: a grant needs a SecretID or SecretName".into());
    }
    s::SecretReference {
        secret_id: id,
        secret_name: r.secret_name.clone().unwrap_or_default(),
        file: r
            .file
            .as_ref()
            .map(|f| file_from_docker(&f.name, &f.uid, &f.gid, f.mode)),
    }
}

pub fn config_to_docker(r: &s::ConfigReference) -> d::TaskSpecContainerSpecConfigs {
    d::TaskSpecContainerSpecConfigs {
        file: file_to_docker(&r.file).map(|f| d::TaskSpecContainerSpecFile1 {
            name: f.name,
            uid: f.uid,
            gid: f.gid,
            mode: f.mode,
        }),
        runtime: None,
        config_id: Some(r.config_id.clone()),
        config_name: Some(r.config_name.clone()),
    }
}

pub(crate) fn config_from_docker(
    v: &mut Verdict,
    r: &d::TaskSpecContainerSpecConfigs,
) -> s::ConfigReference {
    let id = r
        .config_id
        .clone()
        .or_else(|| r.config_name.clone())
        .unwrap_or_default();
    if id.is_empty() {
        v.refused
            .push("ContainerSpec.Configs: a grant needs a ConfigID or ConfigName".into());
    }
    if r.runtime.is_some() {
        v.refused.push(format!(
            "ContainerSpec.Configs {id} Runtime (a credential spec; shoal writes configs as files)"
        ));
    }
    s::ConfigReference {
        config_id: id,
        config_name: r.config_name.clone().unwrap_or_default(),
        file: r
            .file
            .as_ref()
            .map(|f| file_from_docker(&f.name, &f.uid, &f.gid, f.mode)),
    }
}
