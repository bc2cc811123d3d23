//! The network flags of `service create|update`: `--network`,
//! `--network-add`, `--network-rm` and `--endpoint-mode`. Targets are sent
//! as the operator wrote them (a name or an ID); the manager resolves them
//! and stores IDs.

use shoal_proto::v1::{EndpointSpec, NetworkAttachmentConfig, ResolutionMode, ServiceSpec};

/// `NAME`, or Docker's long form `name=NAME,alias=ALIAS[,alias=…]`.
pub fn parse_network(flag: &str, text: &str) -> anyhow::Result<NetworkAttachmentConfig> {
    if !text.contains('=') {
        if text.is_empty() {
            anyhow::bail!("invalid {flag} \"\": expected a network name");
        }
        return Ok(NetworkAttachmentConfig {
            target: text.to_string(),
            aliases: Vec::new(),
        });
    }
    let mut out = NetworkAttachmentConfig::default();
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("name" | "target", v)) if !v.is_empty() => out.target = v.to_string(),
            Some(("alias", v)) if !v.is_empty() => out.aliases.push(v.to_string()),
            _ => anyhow::bail!(
                "invalid {flag} {text:?}: {field:?} is not understood; expected NAME or name=NAME,alias=ALIAS"
            ),
        }
    }
    if out.target.is_empty() {
        anyhow::bail!("invalid {flag} {text:?}: the network's name=NAME is missing");
    }
    Ok(out)
}

pub fn parse_endpoint_mode(text: &str) -> anyhow::Result<ResolutionMode> {
    match text {
        "vip" => Ok(ResolutionMode::Vip),
        "dnsrr" => Ok(ResolutionMode::Dnsrr),
        other => anyhow::bail!("invalid --endpoint-mode {other:?}: expected vip or dnsrr"),
    }
}

/// `create`: the networks and endpoint mode of a new service.
pub fn apply_create(
    spec: &mut ServiceSpec,
    networks: &[String],
    endpoint_mode: Option<&str>,
) -> anyhow::Result<()> {
    let parsed = networks
        .iter()
        .map(|n| parse_network("--network", n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = endpoint_mode.map(parse_endpoint_mode).transpose()?;
    spec.task.get_or_insert_with(Default::default).networks = parsed;
    if let Some(mode) = mode {
        spec.endpoint.get_or_insert_with(EndpointSpec::default).mode = mode as i32;
    }
    Ok(())
}

/// `update`: `remove` are the IDs of the networks to detach (resolved by the
/// caller, since the spec holds IDs), `add` the flags' values.
pub fn apply_update(
    spec: &mut ServiceSpec,
    remove: &[String],
    add: &[String],
    endpoint_mode: Option<&str>,
) -> anyhow::Result<()> {
    let added = add
        .iter()
        .map(|n| parse_network("--network-add", n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = endpoint_mode.map(parse_endpoint_mode).transpose()?;
    let task = spec.task.get_or_insert_with(Default::default);
    task.networks.retain(|n| !remove.contains(&n.target));
    task.networks.extend(added);
    if let Some(mode) = mode {
        spec.endpoint.get_or_insert_with(EndpointSpec::default).mode = mode as i32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_flags_take_a_name_or_the_long_form() {
        let n = parse_network("--network", "appnet").unwrap();
        assert_eq!((n.target.as_str(), n.aliases.len()), ("appnet", 0));
        let n = parse_network("--network", "name=appnet,alias=web,alias=www").unwrap();
        assert_eq!(n.target, "appnet");
        assert_eq!(n.aliases, ["web", "www"]);
        assert!(parse_network("--network", "alias=web")
            .unwrap_err()
            .to_string()
            .contains("name=NAME is missing"));
        assert!(parse_network("--network", "name=a,driver-opt=x")
            .unwrap_err()
            .to_string()
            .contains("not understood"));
        assert!(parse_endpoint_mode("ingress")
            .unwrap_err()
            .to_string()
            .contains("expected vip or dnsrr"));
    }

    #[test]
    fn update_detaches_by_id_and_attaches_by_name() {
        let mut spec = ServiceSpec::default();
        apply_create(&mut spec, &["id-a".into(), "id-b".into()], None).unwrap();
        apply_update(&mut spec, &["id-a".into()], &["c".into()], Some("dnsrr")).unwrap();
        let targets: Vec<&str> = spec
            .task
            .as_ref()
            .unwrap()
            .networks
            .iter()
            .map(|n| n.target.as_str())
            .collect();
        assert_eq!(targets, ["id-b", "c"]);
        assert_eq!(spec.endpoint.unwrap().mode(), ResolutionMode::Dnsrr);
        // A bad flag changes nothing.
        let before = ServiceSpec::default();
        let mut after = before.clone();
        assert!(apply_update(&mut after, &[], &["".into()], None).is_err());
        assert_eq!(before, after);
    }
}
