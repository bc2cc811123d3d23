//! The published-port flags of `service create|update` — `--publish`,
//! `--publish-add`, `--publish-rm` — in Docker's syntax, and how ports are
//! written back (`service ls` PORTS, `service inspect` Endpoint).
//!
//! The short form (`[published:]target[/tcp|udp]`, ranges) is Compose's
//! parser ([`shoal_compose::parse_short_port`]), so a flag and a stack file
//! read a port the same way; [`to_port_config`] is the one conversion both
//! use. The long form (`published=8080,target=80,protocol=udp,mode=host`)
//! is parsed here. Numbers and clashes are checked again by the managers.

use serde_json::{json, Value};
use shoal_proto::v1::{EndpointSpec, PortConfig, PortProtocol, PublishMode, ServiceSpec};

/// A Compose port (short or long form) as the spec stores it. shoal has no
/// per-address binding nor SCTP: said plainly rather than ignored.
pub fn to_port_config(p: &shoal_compose::Port) -> Result<PortConfig, String> {
    if let Some(ip) = p.host_ip.as_ref().filter(|ip| !ip.is_empty()) {
        return Err(format!(
            "a published port cannot be bound to one address ({ip}): it is published on every node's addresses; leave the address out"
        ));
    }
    Ok(PortConfig {
        name: String::new(),
        protocol: match p.protocol {
            shoal_compose::Protocol::Tcp => PortProtocol::Tcp,
            shoal_compose::Protocol::Udp => PortProtocol::Udp,
            shoal_compose::Protocol::Sctp => {
                return Err("protocol sctp is not supported: use tcp or udp".into())
            }
        } as i32,
        target_port: p.target.into(),
        published_port: p.published.map(u32::from).unwrap_or(0),
        publish_mode: match p.mode {
            shoal_compose::PortMode::Ingress => PublishMode::Ingress,
            shoal_compose::PortMode::Host => PublishMode::Host,
        } as i32,
    })
}

/// One `--publish` value: the short form (possibly a range: several ports)
/// or the long form.
pub fn parse_publish(flag: &str, text: &str) -> anyhow::Result<Vec<PortConfig>> {
    let text = text.trim();
    if !text.contains('=') {
        let ports = shoal_compose::parse_short_port(text)
            .map_err(|e| anyhow::anyhow!("invalid {flag} {text:?}: {e}"))?;
        return ports
            .iter()
            .map(|p| to_port_config(p).map_err(|e| anyhow::anyhow!("invalid {flag} {text:?}: {e}")))
            .collect();
    }
    let mut port = PortConfig::default();
    let mut target = None;
    for field in text.split(',') {
        let (key, value) = field.split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "invalid {flag} {text:?}: expected key=value pairs (published=8080,target=80,protocol=tcp,mode=ingress)"
            )
        })?;
        let number = |v: &str| -> anyhow::Result<u32> {
            match v.trim().parse::<u32>() {
                Ok(n @ 1..=65535) => Ok(n),
                _ => anyhow::bail!(
                    "invalid {flag} {text:?}: {key} must be a port number from 1 to 65535, got {v:?}"
                ),
            }
        };
        match key.trim() {
            "published" => port.published_port = number(value)?,
            "target" => target = Some(number(value)?),
            "protocol" => {
                port.protocol = match value.trim() {
                    "tcp" => PortProtocol::Tcp,
                    "udp" => PortProtocol::Udp,
                    other => anyhow::bail!(
                        "invalid {flag} {text:?}: protocol must be tcp or udp, got {other:?}"
                    ),
                } as i32
            }
            "mode" => {
                port.publish_mode = match value.trim() {
                    "ingress" => PublishMode::Ingress,
                    "host" => PublishMode::Host,
                    other => anyhow::bail!(
                        "invalid {flag} {text:?}: mode must be ingress or host, got {other:?}"
                    ),
                } as i32
            }
            other => anyhow::bail!(
                "invalid {flag} {text:?}: unknown field {other:?} (expected published, target, protocol, mode)"
            ),
        }
    }
    port.target_port =
        target.ok_or_else(|| anyhow::anyhow!("invalid {flag} {text:?}: target=PORT is missing"))?;
    Ok(vec![port])
}

fn parse_all(flag: &str, values: &[String]) -> anyhow::Result<Vec<PortConfig>> {
    let mut out = Vec::new();
    for v in values {
        out.extend(parse_publish(flag, v)?);
    }
    Ok(out)
}

fn ports_mut(spec: &mut ServiceSpec) -> &mut Vec<PortConfig> {
    &mut spec
        .endpoint
        .get_or_insert_with(EndpointSpec::default)
        .ports
}

/// `create --publish`.
pub fn apply_create(spec: &mut ServiceSpec, publish: &[String]) -> anyhow::Result<()> {
    let ports = parse_all("--publish", publish)?;
    if !ports.is_empty() {
        *ports_mut(spec) = ports;
    }
    Ok(())
}

/// `update --publish-rm PORT[/PROTO]` then `--publish-add`. A port to
/// remove is matched by its published number — the one `service ls` shows,
/// allocated ones included (`allocated` is the service's endpoint, in spec
/// order) — else by its target port. An added port replaces one with the
/// same published number (or, unpublished, the same target).
pub fn apply_update(
    spec: &mut ServiceSpec,
    allocated: &[PortConfig],
    add: &[String],
    remove: &[String],
) -> anyhow::Result<()> {
    let added = parse_all("--publish-add", add)?;
    if add.is_empty() && remove.is_empty() {
        return Ok(());
    }
    let mut current: Vec<(PortConfig, u32)> = spec
        .endpoint
        .as_ref()
        .map(|e| e.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let published = allocated
                .get(i)
                .filter(|a| a.target_port == p.target_port && a.protocol == p.protocol)
                .map(|a| a.published_port)
                .unwrap_or(p.published_port);
            (p, published)
        })
        .collect();
    for text in remove {
        let (number, protocol) = match text.trim().rsplit_once('/') {
            Some((n, "tcp")) => (n, Some(PortProtocol::Tcp as i32)),
            Some((n, "udp")) => (n, Some(PortProtocol::Udp as i32)),
            Some((_, other)) => anyhow::bail!(
                "invalid --publish-rm {text:?}: protocol must be tcp or udp, got {other:?}"
            ),
            None => (text.trim(), None),
        };
        // `--publish-rm 8080:80` names the published port first, as Docker.
        let number = number.split(':').next().unwrap_or(number);
        let n: u32 = number.parse().map_err(|_| {
            anyhow::anyhow!("invalid --publish-rm {text:?}: expected PORT[/tcp|udp]")
        })?;
        let proto_ok = |p: &PortConfig| protocol.is_none_or(|x| x == p.protocol);
        let before = current.len();
        current.retain(|(p, published)| !(*published == n && proto_ok(p)));
        if current.len() == before {
            current.retain(|(p, _)| !(p.target_port == n && proto_ok(p)));
        }
        if current.len() == before {
            anyhow::bail!(
                "invalid --publish-rm {text}: the service publishes no such port (see the PORTS column of `shoal service ls`)"
            );
        }
    }
    for port in added {
        current.retain(|(p, published)| {
            p.protocol != port.protocol
                || if port.published_port != 0 {
                    *published != port.published_port
                } else {
                    p.published_port != 0 || p.target_port != port.target_port
                }
        });
        current.push((port, 0));
    }
    *ports_mut(spec) = current.into_iter().map(|(p, _)| p).collect();
    Ok(())
}

/// Docker's PORTS column: `*:8080->80/tcp`, ingress ports only (host-mode
/// ones belong to tasks).
pub fn ports_column(ports: &[PortConfig]) -> String {
    ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Ingress as i32)
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p.published_port,
                p.target_port,
                protocol(p.protocol)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn protocol(p: i32) -> &'static str {
    if p == PortProtocol::Udp as i32 {
        "udp"
    } else {
        "tcp"
    }
}

/// Docker's `Ports` array of `EndpointSpec` and `Endpoint`.
pub fn ports_json(ports: &[PortConfig]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let mut v = json!({
                    "Protocol": protocol(p.protocol),
                    "TargetPort": p.target_port,
                    "PublishMode": if p.publish_mode == PublishMode::Host as i32 { "host" } else { "ingress" },
                });
                if p.published_port != 0 {
                    v["PublishedPort"] = json!(p.published_port);
                }
                if !p.name.is_empty() {
                    v["Name"] = json!(p.name);
                }
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> PortConfig {
        let mut v = parse_publish("--publish", text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn short_and_long_forms_read_as_docker_reads_them() {
        let p = one("8080:80");
        assert_eq!((p.published_port, p.target_port), (8080, 80));
        assert_eq!(p.protocol, PortProtocol::Tcp as i32);
        assert_eq!(p.publish_mode, PublishMode::Ingress as i32);
        let p = one("80/udp");
        assert_eq!((p.published_port, p.target_port), (0, 80));
        assert_eq!(p.protocol, PortProtocol::Udp as i32);
        let p = one("published=9000,target=90,protocol=udp,mode=host");
        assert_eq!((p.published_port, p.target_port), (9000, 90));
        assert_eq!(p.publish_mode, PublishMode::Host as i32);
        assert_eq!(
            parse_publish("--publish", "8000-8001:80-81").unwrap().len(),
            2
        );
    }

    #[test]
    fn typos_and_bad_numbers_say_what_is_expected() {
        let err = |t: &str| parse_publish("--publish", t).unwrap_err().to_string();
        assert!(
            err("8080:80/tpc").contains("tcp, udp"),
            "{}",
            err("8080:80/tpc")
        );
        assert!(err("70000:80").contains("between 1 and 65535"));
        assert!(err("published=8080,target=80,protocol=tpc").contains("tcp or udp"));
        assert!(err("published=8080").contains("target=PORT is missing"));
        assert!(err("published=8080,target=80,mode=global").contains("ingress or host"));
        assert!(err("127.0.0.1:8080:80").contains("leave the address out"));
        assert!(err("8080:80/sctp").contains("not supported"));
    }

    #[test]
    fn publish_rm_takes_the_published_number_shown_by_ls_even_when_allocated() {
        let mut spec = ServiceSpec::default();
        apply_create(&mut spec, &["80".into(), "9090:90".into()]).unwrap();
        let allocated = vec![
            PortConfig {
                published_port: 30000,
                target_port: 80,
                ..Default::default()
            },
            one("9090:90"),
        ];
        apply_update(
            &mut spec,
            &allocated,
            &["7070:70".into()],
            &["30000".into()],
        )
        .unwrap();
        let ports = &spec.endpoint.as_ref().unwrap().ports;
        let published: Vec<u32> = ports.iter().map(|p| p.published_port).collect();
        assert_eq!(published, vec![9090, 7070]);
        assert!(apply_update(&mut spec, &allocated, &[], &["1234".into()]).is_err());
        assert_eq!(ports_column(&allocated), "*:30000->80/tcp, *:9090->90/tcp");
    }
}
