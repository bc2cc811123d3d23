//! The Compose schema as shoal reads it: walks the merged, interpolated
//! document, checks every key and type, expands short forms, resolves
//! references and builds the [`Stack`]. Valid Compose options that shoal
//! does not apply become [`Warning`]s here; everything else that is wrong is
//! a [`ComposeError`] naming file, line, key path and what was expected.
//!
//! Reading `env_file`s is the only I/O, and it goes through the caller's
//! reader so that this module stays testable without a file system.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::error::{ComposeError, Location};
use crate::model::*;
use crate::yaml::{Key, Node, Pos, Value};
use shoal_proto::syntax;

/// Service keys shoal applies.
const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "labels",
    "ports",
    "expose",
    "healthcheck",
    "deploy",
    "networks",
    "secrets",
    "configs",
    "volumes",
    "tmpfs",
    "read_only",
    "stop_grace_period",
    "stop_signal",
    "depends_on",
    "working_dir",
    "user",
    "hostname",
    "dns",
];

/// Service keys of the Compose Spec that shoal does not apply: accepted and
/// reported as "Ignoring unsupported options".
const SERVICE_IGNORED: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns_opt",
    "dns_search",
    "domainname",
    "driver_opts",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "restart",
    "runtime",
    "scale",
    "security_opt",
    "shm_size",
    "stdin_open",
    "storage_opt",
    "sysctls",
    "tty",
    "ulimits",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// What the schema layer needs from its caller.
pub(crate) struct Context<'a> {
    /// Variables for bare `environment` entries and `environment:` secrets.
    pub vars: &'a HashMap<String, String>,
    /// Directory that relative paths (`env_file`, secret `file`) are
    /// resolved against: the first Compose file's.
    pub base_dir: &'a Path,
    pub read_file: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

struct Walker<'a> {
    ctx: &'a Context<'a>,
    warnings: Vec<Warning>,
}

fn invalid(pos: &Pos, path: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        at: pos.location(),
        path: path.to_owned(),
        message: message.into(),
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A mapping whose keys have been checked.
struct Obj<'n> {
    entries: &'n [(Key, Node)],
}

impl<'n> Obj<'n> {
    /// The value of `key`; a null value counts as absent, as in Compose.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| k.name == key && v.value != Value::Null)
            .map(|(_, v)| v)
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.name == key)
    }
}

impl Walker<'_> {
    /// Checks that `node` is a mapping whose keys are all in `known` or
    /// `ignored` (recorded as warnings) or start with `x-` (skipped).
    fn obj<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> Result<Obj<'n>, ComposeError> {
        let Value::Map(entries) = &node.value else {
            return Err(invalid(
                &node.pos,
                path,
                format!("expected a mapping, got {}", describe(node)),
            ));
        };
        for (key, _) in entries {
            let name = key.name.as_str();
            if name.starts_with("x-") || known.contains(&name) {
                continue;
            }
            if ignored.contains(&name) {
                self.warn(name, &child(path, name), &key.pos);
                continue;
            }
            let mut message = format!("unknown key `{name}`");
            if let Some(best) = suggest(name, known) {
                message.push_str(&format!("; did you mean `{best}`?"));
            } else {
                message.push_str(&format!("; expected one of: {}", known.join(", ")));
            }
            return Err(invalid(&key.pos, &child(path, name), message));
        }
        Ok(Obj { entries })
    }

    fn warn(&mut self, option: &str, path: &str, pos: &Pos) {
        self.warnings.push(Warning {
            option: option.to_owned(),
            path: path.to_owned(),
            at: pos.location(),
        });
    }
}

/// The closest known key within two edits, for "did you mean".
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => format!("{text:?}"),
        _ => node.kind().to_owned(),
    }
}

// ---- scalar readers -------------------------------------------------------

fn string(node: &Node, path: &str) -> Result<String, ComposeError> {
    node.scalar().map(str::to_owned).ok_or_else(|| {
        invalid(
            &node.pos,
            path,
            format!("expected a string, got {}", describe(node)),
        )
    })
}

fn uint(node: &Node, path: &str) -> Result<u64, ComposeError> {
    node.scalar()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            invalid(
                &node.pos,
                path,
                format!("expected a non-negative integer, got {}", describe(node)),
            )
        })
}

fn boolean(node: &Node, path: &str) -> Result<bool, ComposeError> {
    match node.scalar() {
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        _ => Err(invalid(
            &node.pos,
            path,
            format!("expected true or false, got {}", describe(node)),
        )),
    }
}

fn duration(node: &Node, path: &str) -> Result<std::time::Duration, ComposeError> {
    let text = string(node, path)?;
    syntax::parse_duration(&text).map_err(|e| invalid(&node.pos, path, e))
}

fn one_of<T: Copy>(node: &Node, path: &str, choices: &[(&str, T)]) -> Result<T, ComposeError> {
    let text = string(node, path)?;
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            invalid(
                &node.pos,
                path,
                format!("expected one of {}, got {text:?}", names.join(", ")),
            )
        })
}

/// A list of strings; a single string is accepted as a one-item list where
/// Compose allows it (`dns: 8.8.8.8`, `env_file: .env`).
fn string_list(node: &Node, path: &str, single_ok: bool) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &index(path, i)))
            .collect(),
        Value::Scalar { text, .. } if single_ok => Ok(vec![text.clone()]),
        _ => Err(invalid(
            &node.pos,
            path,
            format!("expected a list of strings, got {}", describe(node)),
        )),
    }
}

/// `command` / `entrypoint`: a list is the argv; a string is split like a
/// shell would.
fn command(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Scalar { text, .. } => {
            syntax::split_command(text).map_err(|e| invalid(&node.pos, path, e))
        }
        Value::Seq(_) => string_list(node, path, false),
        _ => Err(invalid(
            &node.pos,
            path,
            format!(
                "expected a command string or a list of arguments, got {}",
                describe(node)
            ),
        )),
    }
}

/// `KEY=VALUE` list or `KEY: VALUE` mapping. A value is `None` for a bare
/// `KEY` or `KEY:` with no value.
fn key_values(node: &Node, path: &str) -> Result<Vec<(String, Option<String>)>, ComposeError> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = string(item, &index(path, i))?;
                Ok(match text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (text, None),
                })
            })
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match &v.value {
                Value::Null => Ok((k.name.clone(), None)),
                Value::Scalar { text, .. } => Ok((k.name.clone(), Some(text.clone()))),
                _ => Err(invalid(
                    &v.pos,
                    &child(path, &k.name),
                    format!("expected a string, number or boolean, got {}", v.kind()),
                )),
            })
            .collect(),
        _ => Err(invalid(
            &node.pos,
            path,
            format!(
                "expected a mapping or a list of KEY=VALUE strings, got {}",
                describe(node)
            ),
        )),
    }
}

fn labels(node: &Node, path: &str) -> Result<BTreeMap<String, String>, ComposeError> {
    Ok(key_values(node, path)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn string_map(node: &Node, path: &str) -> Result<BTreeMap<String, String>, ComposeError> {
    match &node.value {
        Value::Map(_) => labels(node, path),
        _ => Err(invalid(
            &node.pos,
            path,
            format!("expected a mapping, got {}", describe(node)),
        )),
    }
}

// ---- ports ----------------------------------------------------------------

fn port_number(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u64>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(n) => Err(format!(
            "expected a port number between 1 and 65535, got {n}"
        )),
        Err(_) => Err(format!(
            "expected a port number between 1 and 65535, got {text:?}"
        )),
    }
}

/// `N` or `N-M`, inclusive.
fn port_range(text: &str) -> Result<(u16, u16), String> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a)?, port_number(b)?);
            if a > b {
                return Err(format!("expected a port range low-high, got {text:?}"));
            }
            Ok((a, b))
        }
        None => port_number(text).map(|n| (n, n)),
    }
}

fn protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!("expected protocol tcp, udp or sctp, got {text:?}")),
    }
}

/// Short port syntax: `[[IP:](HOST|HOST-RANGE|):](PORT|RANGE)[/PROTO]`.
pub fn parse_short_port(spec: &str) -> Result<Vec<Port>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, p)) => (rest, protocol(p)?),
        None => (spec, Protocol::Tcp),
    };
    // A bracketed IPv6 address may itself contain colons.
    let (host_ip, rest) = match rest.strip_prefix('[') {
        Some(after) => {
            let (ip, tail) = after
                .split_once(']')
                .ok_or_else(|| format!("expected `]` closing the IPv6 address in {spec:?}"))?;
            let tail = tail
                .strip_prefix(':')
                .ok_or_else(|| format!("expected `:` after the IPv6 address in {spec:?}"))?;
            (Some(ip.to_owned()), tail)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some((*ip).to_owned()), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => {
            return Err(format!(
                "expected a port like 80, 8080:80, 127.0.0.1:8080:80/udp or 8000-8010:8000-8010, got {spec:?}"
            ))
        }
    };
    let (c_lo, c_hi) = port_range(container)?;
    let host = host.filter(|h| !h.is_empty()).map(port_range).transpose()?;
    let count = c_hi - c_lo;
    let published: Vec<Option<u16>> = match host {
        None => vec![None; usize::from(count) + 1],
        Some((h_lo, h_hi)) if h_hi - h_lo == count => (h_lo..=h_hi).map(Some).collect(),
        Some(_) => {
            return Err(format!(
                "expected host and container port ranges of the same length in {spec:?}"
            ))
        }
    };
    Ok((c_lo..=c_hi)
        .zip(published)
        .map(|(target, published)| Port {
            target,
            published,
            protocol: proto,
            mode: PortMode::Ingress,
            host_ip: host_ip.clone(),
        })
        .collect())
}

// ---- the walk -------------------------------------------------------------

/// Builds the stack from a merged, interpolated document.
pub(crate) fn convert(root: Node, ctx: &Context<'_>) -> Result<Stack, ComposeError> {
    let mut w = Walker {
        ctx,
        warnings: Vec::new(),
    };
    if !matches!(root.value, Value::Map(_)) {
        return Err(invalid(
            &root.pos,
            "(top level)",
            format!(
                "expected a mapping with a `services:` key, got {}",
                describe(&root)
            ),
        ));
    }
    let top = w.obj(
        &root,
        "",
        &[
            "version", "name", "services", "networks", "volumes", "secrets", "configs",
        ],
        &["include", "models"],
    )?;
    let name = top.get("name").map(|n| string(n, "name")).transpose()?;
    if let Some(v) = top.get("version") {
        string(v, "version")?;
    }

    let mut networks = BTreeMap::new();
    for (key, node) in named_entries(top.get("networks"), "networks")? {
        let path = child("networks", &key.name);
        networks.insert(key.name.clone(), network_def(&mut w, node, &path)?);
    }
    let mut volumes = BTreeMap::new();
    for (key, node) in named_entries(top.get("volumes"), "volumes")? {
        let path = child("volumes", &key.name);
        volumes.insert(key.name.clone(), volume_def(&mut w, node, &path)?);
    }
    let mut secrets = BTreeMap::new();
    for (key, node) in named_entries(top.get("secrets"), "secrets")? {
        let path = child("secrets", &key.name);
        secrets.insert(
            key.name.clone(),
            file_object_def(&mut w, node, &path, false)?,
        );
    }
    let mut configs = BTreeMap::new();
    for (key, node) in named_entries(top.get("configs"), "configs")? {
        let path = child("configs", &key.name);
        configs.insert(
            key.name.clone(),
            file_object_def(&mut w, node, &path, true)?,
        );
    }

    let service_entries = named_entries(top.get("services"), "services")?;
    let service_names: BTreeSet<String> = service_entries
        .iter()
        .map(|(k, _)| k.name.clone())
        .collect();
    let refs = Refs {
        services: &service_names,
        networks: &networks,
        volumes: &volumes,
        secrets: &secrets,
        configs: &configs,
    };
    let mut services = BTreeMap::new();
    let mut depends_pos: HashMap<String, Location> = HashMap::new();
    for (key, node) in &service_entries {
        let path = child("services", &key.name);
        let valid_name = key
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid_name {
            return Err(invalid(
                &key.pos,
                &path,
                format!(
                    "invalid service name {:?}: expected letters, digits, `_`, `.` or `-`, starting with a letter or digit",
                    key.name
                ),
            ));
        }
        if node.value == Value::Null {
            return Err(invalid(
                &node.pos,
                &path,
                "expected a mapping with at least `image`, got null",
            ));
        }
        if let Some(dep) = node.get("depends_on") {
            depends_pos.insert(key.name.clone(), dep.pos.location());
        }
        let service = service_def(&mut w, node, &path, &key.pos, &refs)?;
        services.insert(key.name.clone(), service);
    }
    if services
        .values()
        .any(|s: &ServiceDef| s.networks.iter().any(|n| n.name == "default"))
    {
        networks.entry("default".to_owned()).or_default();
    }

    let stack = Stack {
        name,
        services,
        networks,
        volumes,
        secrets,
        configs,
        warnings: w.warnings,
        document: Node::new(Value::Null, root.pos.clone()),
    };
    if let Err(cycle) = crate::order::layers(&stack) {
        let at = cycle.first().and_then(|s| depends_pos.get(s)).cloned();
        return Err(ComposeError::Cycle { at, cycle });
    }
    Ok(Stack {
        document: root,
        ..stack
    })
}

/// The entries of a top-level `services:`/`networks:`/… mapping.
fn named_entries<'n>(
    node: Option<&'n Node>,
    path: &str,
) -> Result<Vec<(&'n Key, &'n Node)>, ComposeError> {
    match node {
        None => Ok(Vec::new()),
        Some(Node {
            value: Value::Map(entries),
            ..
        }) => Ok(entries
            .iter()
            .filter(|(k, _)| !k.name.starts_with("x-"))
            .map(|(k, v)| (k, v))
            .collect()),
        Some(other) => Err(invalid(
            &other.pos,
            path,
            format!("expected a mapping of names, got {}", describe(other)),
        )),
    }
}

/// `external: true`, or the legacy `external: {name: …}`.
fn external(node: &Node, path: &str) -> Result<(bool, Option<String>), ComposeError> {
    match &node.value {
        Value::Map(_) => {
            let name = node
                .get("name")
                .map(|n| string(n, &child(path, "name")))
                .transpose()?;
            Ok((true, name))
        }
        _ => Ok((boolean(node, path)?, None)),
    }
}

fn network_def(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<NetworkDef, ComposeError> {
    let mut def = NetworkDef::default();
    if node.value == Value::Null {
        return Ok(def);
    }
    let o = w.obj(
        node,
        path,
        &[
            "driver",
            "driver_opts",
            "attachable",
            "internal",
            "external",
            "name",
            "labels",
            "ipam",
        ],
        &["enable_ipv4", "enable_ipv6"],
    )?;
    if let Some(n) = o.get("ipam") {
        def.ipam = ipam(w, n, &child(path, "ipam"))?;
    }
    if let Some(n) = o.get("driver") {
        def.driver = Some(string(n, &child(path, "driver"))?);
    }
    if let Some(n) = o.get("driver_opts") {
        def.driver_opts = string_map(n, &child(path, "driver_opts"))?;
    }
    if let Some(n) = o.get("attachable") {
        def.attachable = boolean(n, &child(path, "attachable"))?;
    }
    if let Some(n) = o.get("internal") {
        def.internal = boolean(n, &child(path, "internal"))?;
    }
    if let Some(n) = o.get("external") {
        let (ext, name) = external(n, &child(path, "external"))?;
        def.external = ext;
        def.name = name;
    }
    if let Some(n) = o.get("name") {
        def.name = Some(string(n, &child(path, "name"))?);
    }
    if let Some(n) = o.get("labels") {
        def.labels = labels(n, &child(path, "labels"))?;
    }
    Ok(def)
}

/// A network's `ipam:`: the `config` list of subnets (the `driver` is
/// the default one; IPAM `options` have no meaning for shoal's allocator).
fn ipam(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<Vec<IpamPool>, ComposeError> {
    if node.value == Value::Null {
        return Ok(Vec::new());
    }
    let o = w.obj(node, path, &["driver", "config"], &["options"])?;
    if let Some(n) = o.get("driver") {
        let driver = string(n, &child(path, "driver"))?;
        if driver != "default" {
            return Err(invalid(
                &n.pos,
                &child(path, "driver"),
                format!("IPAM driver {driver:?} is not supported: shoal has its own (use `default` or leave it out)"),
            ));
        }
    }
    let Some(config) = o.get("config") else {
        return Ok(Vec::new());
    };
    let config_path = child(path, "config");
    let Value::Seq(items) = &config.value else {
        return Err(invalid(
            &config.pos,
            &config_path,
            format!("expected a list of subnets, got {}", describe(config)),
        ));
    };
    let mut pools = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&config_path, i);
        let o = w.obj(
            item,
            &item_path,
            &["subnet", "gateway", "ip_range"],
            &["aux_addresses"],
        )?;
        let field = |key: &str| {
            o.get(key)
                .map(|n| string(n, &child(&item_path, key)))
                .transpose()
        };
        pools.push(IpamPool {
            subnet: field("subnet")?,
            gateway: field("gateway")?,
            ip_range: field("ip_range")?,
        });
    }
    Ok(pools)
}

fn volume_def(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<VolumeDef, ComposeError> {
    let mut def = VolumeDef::default();
    if node.value == Value::Null {
        return Ok(def);
    }
    let o = w.obj(
        node,
        path,
        &["driver", "driver_opts", "external", "name", "labels"],
        &[],
    )?;
    if let Some(n) = o.get("driver") {
        def.driver = Some(string(n, &child(path, "driver"))?);
    }
    if let Some(n) = o.get("driver_opts") {
        def.driver_opts = string_map(n, &child(path, "driver_opts"))?;
    }
    if let Some(n) = o.get("external") {
        let (ext, name) = external(n, &child(path, "external"))?;
        def.external = ext;
        def.name = name;
    }
    if let Some(n) = o.get("name") {
        def.name = Some(string(n, &child(path, "name"))?);
    }
    if let Some(n) = o.get("labels") {
        def.labels = labels(n, &child(path, "labels"))?;
    }
    Ok(def)
}

fn file_object_def(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    is_config: bool,
) -> Result<FileObjectDef, ComposeError> {
    let sources: &[&str] = if is_config {
        &["file", "environment", "content", "external"]
    } else {
        &["file", "environment", "external"]
    };
    let expected = format!(
        "expected exactly one of {}",
        sources
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if node.value == Value::Null {
        return Err(invalid(&node.pos, path, format!("{expected}, got null")));
    }
    let mut known = vec!["name", "labels"];
    known.extend_from_slice(sources);
    let o = w.obj(
        node,
        path,
        &known,
        &["driver", "driver_opts", "template_driver"],
    )?;
    let given: Vec<(&str, &Node)> = sources
        .iter()
        .filter_map(|key| o.get(key).map(|n| (*key, n)))
        .collect();
    let [(key, n)] = given[..] else {
        return Err(invalid(
            &node.pos,
            path,
            format!("{expected}, got {}", given.len()),
        ));
    };
    let kp = child(path, key);
    let source = match key {
        "file" => FileSource::File(w.ctx.base_dir.join(string(n, &kp)?)),
        "environment" => FileSource::Environment(string(n, &kp)?),
        "content" => FileSource::Content(string(n, &kp)?),
        _ => {
            if !external(n, &kp)?.0 {
                return Err(invalid(
                    &n.pos,
                    &kp,
                    format!("{expected}; `external: false` is not a source"),
                ));
            }
            FileSource::External
        }
    };
    let mut def = FileObjectDef {
        source,
        name: None,
        labels: BTreeMap::new(),
    };
    if let Some(n) = o
        .get("external")
        .filter(|n| matches!(n.value, Value::Map(_)))
    {
        def.name = external(n, &child(path, "external"))?.1;
    }
    if let Some(n) = o.get("name") {
        def.name = Some(string(n, &child(path, "name"))?);
    }
    if let Some(n) = o.get("labels") {
        def.labels = labels(n, &child(path, "labels"))?;
    }
    Ok(def)
}

/// What service references are checked against.
struct Refs<'a> {
    services: &'a BTreeSet<String>,
    networks: &'a BTreeMap<String, NetworkDef>,
    volumes: &'a BTreeMap<String, VolumeDef>,
    secrets: &'a BTreeMap<String, FileObjectDef>,
    configs: &'a BTreeMap<String, FileObjectDef>,
}

fn service_def(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    name_pos: &Pos,
    refs: &Refs<'_>,
) -> Result<ServiceDef, ComposeError> {
    let o = w.obj(node, path, SERVICE_KEYS, SERVICE_IGNORED)?;
    let p = |key: &str| child(path, key);
    let mut s = ServiceDef::default();

    if let Some(n) = node.get("x-shoal-runtime") {
        s.runtime = one_of(
            n,
            &p("x-shoal-runtime"),
            &[
                ("container", Runtime::Container),
                ("process", Runtime::Process),
            ],
        )?;
    }
    if let Some(n) = o.get("image") {
        s.image = Some(string(n, &p("image"))?);
    }
    if let Some(n) = o.get("command") {
        s.command = command(n, &p("command"))?;
    }
    if let Some(n) = o.get("entrypoint") {
        s.entrypoint = command(n, &p("entrypoint"))?;
    }
    match s.runtime {
        Runtime::Container if s.image.is_none() && !o.has("build") => {
            return Err(invalid(
                name_pos,
                path,
                "expected `image` (or `x-shoal-runtime: process` with a `command` for a process service)",
            ))
        }
        Runtime::Process if s.image.is_some() => {
            return Err(invalid(
                &o.get("image").unwrap_or(node).pos,
                &p("image"),
                "a process service (`x-shoal-runtime: process`) runs its `entrypoint` and `command`, not an image: remove `image` or `x-shoal-runtime`",
            ))
        }
        Runtime::Process if s.command.is_empty() && s.entrypoint.is_empty() => {
            return Err(invalid(
                name_pos,
                path,
                "expected `command` or `entrypoint`: a process service (`x-shoal-runtime: process`) needs a command line",
            ))
        }
        _ => {}
    }

    // env_file first, then `environment` on top, as in Compose.
    if let Some(n) = o.get("env_file") {
        for (i, file) in env_files(n, &p("env_file"))?.into_iter().enumerate() {
            let item_path = if matches!(n.value, Value::Seq(_)) {
                index(&p("env_file"), i)
            } else {
                p("env_file")
            };
            let full = w.ctx.base_dir.join(&file.0);
            let text = match (w.ctx.read_file)(&full) {
                Ok(text) => text,
                // `required: false` forgives a missing file only, as in
                // Compose; one too large to read is still an error.
                Err(e) if !file.1 && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(invalid(
                        &n.pos,
                        &item_path,
                        format!("cannot read env file {}: {e}", full.display()),
                    ))
                }
            };
            for (k, v) in crate::dotenv::parse_dotenv(&full.display().to_string(), &text)? {
                match v.or_else(|| w.ctx.vars.get(&k).cloned()) {
                    Some(v) => s.environment.insert(k, v),
                    None => s.environment.remove(&k),
                };
            }
        }
    }
    if let Some(n) = o.get("environment") {
        for (k, v) in key_values(n, &p("environment"))? {
            match v.or_else(|| w.ctx.vars.get(&k).cloned()) {
                Some(v) => s.environment.insert(k, v),
                None => s.environment.remove(&k),
            };
        }
    }
    if let Some(n) = o.get("labels") {
        s.labels = labels(n, &p("labels"))?;
    }
    if let Some(n) = o.get("ports") {
        s.ports = ports(w, n, &p("ports"))?;
    }
    if let Some(n) = o.get("expose") {
        let path = p("expose");
        let Value::Seq(items) = &n.value else {
            return Err(invalid(
                &n.pos,
                &path,
                format!("expected a list of ports, got {}", describe(n)),
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let text = string(item, &index(&path, i))?;
            let (range, proto) = match text.rsplit_once('/') {
                Some((r, pr)) => (r, Some(pr)),
                None => (text.as_str(), None),
            };
            port_range(range)
                .and_then(|_| proto.map(protocol).transpose())
                .map_err(|e| invalid(&item.pos, &index(&path, i), e))?;
            s.expose.push(text);
        }
    }
    if let Some(n) = o.get("healthcheck") {
        s.healthcheck = Some(healthcheck(w, n, &p("healthcheck"))?);
    }
    if let Some(n) = o.get("deploy") {
        deploy(w, n, &p("deploy"), &mut s)?;
    }
    match o.get("networks") {
        None => s.networks.push(NetworkRef {
            name: "default".to_owned(),
            aliases: Vec::new(),
        }),
        Some(n) => s.networks = service_networks(w, n, &p("networks"), refs)?,
    }
    if let Some(n) = o.get("secrets") {
        s.secrets = file_refs(w, n, &p("secrets"), "secret", refs.secrets)?;
    }
    if let Some(n) = o.get("configs") {
        s.configs = file_refs(w, n, &p("configs"), "config", refs.configs)?;
    }
    if let Some(n) = o.get("volumes") {
        s.volumes = mounts(w, n, &p("volumes"), refs)?;
    }
    if let Some(n) = o.get("tmpfs") {
        let path = p("tmpfs");
        let targets = match &n.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, t)| string(t, &index(&path, i)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![string(n, &path)?],
        };
        for target in targets {
            // `/run:size=64m` style options are Docker's too; shoal takes
            // the path.
            let target = target.split(':').next().unwrap_or_default().to_owned();
            s.volumes.push(Mount {
                kind: MountKind::Tmpfs,
                source: None,
                target,
                read_only: false,
                tmpfs_size: None,
                tmpfs_mode: None,
            });
        }
    }
    if let Some(n) = o.get("read_only") {
        s.read_only = boolean(n, &p("read_only"))?;
    }
    if let Some(n) = o.get("stop_grace_period") {
        s.stop_grace_period = Some(duration(n, &p("stop_grace_period"))?);
    }
    if let Some(n) = o.get("stop_signal") {
        s.stop_signal = Some(string(n, &p("stop_signal"))?);
    }
    if let Some(n) = o.get("depends_on") {
        s.depends_on = depends_on(w, n, &p("depends_on"), refs)?;
    }
    if let Some(n) = o.get("working_dir") {
        s.working_dir = Some(string(n, &p("working_dir"))?);
    }
    if let Some(n) = o.get("user") {
        s.user = Some(string(n, &p("user"))?);
    }
    if let Some(n) = o.get("hostname") {
        s.hostname = Some(string(n, &p("hostname"))?);
    }
    if let Some(n) = o.get("dns") {
        s.dns = string_list(n, &p("dns"), true)?;
    }
    Ok(s)
}

/// `env_file`: a path, a list of paths, or a list of `{path, required}`.
/// Returns (path, required).
fn env_files(node: &Node, path: &str) -> Result<Vec<(String, bool)>, ComposeError> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(vec![(text.clone(), true)]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let ip = index(path, i);
                match &item.value {
                    Value::Map(_) => {
                        let file = item
                            .get("path")
                            .ok_or_else(|| invalid(&item.pos, &ip, "expected a `path`"))?;
                        let required = item
                            .get("required")
                            .map(|r| boolean(r, &child(&ip, "required")))
                            .transpose()?
                            .unwrap_or(true);
                        Ok((string(file, &child(&ip, "path"))?, required))
                    }
                    _ => Ok((string(item, &ip)?, true)),
                }
            })
            .collect(),
        _ => Err(invalid(
            &node.pos,
            path,
            format!("expected a path or a list of paths, got {}", describe(node)),
        )),
    }
}

fn ports(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<Vec<Port>, ComposeError> {
    let Value::Seq(items) = &node.value else {
        return Err(invalid(
            &node.pos,
            path,
            format!("expected a list of ports, got {}", describe(node)),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        match &item.value {
            Value::Scalar { text, .. } => {
                out.extend(parse_short_port(text).map_err(|e| invalid(&item.pos, &ip, e))?);
            }
            Value::Map(_) => {
                let o = w.obj(
                    item,
                    &ip,
                    &["target", "published", "host_ip", "protocol", "mode"],
                    &["name", "app_protocol"],
                )?;
                let target = o
                    .get("target")
                    .ok_or_else(|| invalid(&item.pos, &ip, "expected a `target` port"))?;
                let mut port = Port {
                    target: port_number(&string(target, &child(&ip, "target"))?)
                        .map_err(|e| invalid(&target.pos, &child(&ip, "target"), e))?,
                    published: None,
                    protocol: Protocol::Tcp,
                    mode: PortMode::Ingress,
                    host_ip: None,
                };
                if let Some(n) = o.get("published") {
                    let pp = child(&ip, "published");
                    port.published =
                        Some(port_number(&string(n, &pp)?).map_err(|e| invalid(&n.pos, &pp, e))?);
                }
                if let Some(n) = o.get("host_ip") {
                    port.host_ip = Some(string(n, &child(&ip, "host_ip"))?);
                }
                if let Some(n) = o.get("protocol") {
                    let pp = child(&ip, "protocol");
                    port.protocol =
                        protocol(&string(n, &pp)?).map_err(|e| invalid(&n.pos, &pp, e))?;
                }
                if let Some(n) = o.get("mode") {
                    port.mode = one_of(
                        n,
                        &child(&ip, "mode"),
                        &[("ingress", PortMode::Ingress), ("host", PortMode::Host)],
                    )?;
                }
                out.push(port);
            }
            _ => {
                return Err(invalid(
                    &item.pos,
                    &ip,
                    format!(
                    "expected a port string like \"8080:80\" or a mapping with `target`, got {}",
                    describe(item)
                ),
                ))
            }
        }
    }
    Ok(out)
}

fn healthcheck(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<Healthcheck, ComposeError> {
    let o = w.obj(
        node,
        path,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
        &[],
    )?;
    let p = |key: &str| child(path, key);
    let mut h = Healthcheck::default();
    if let Some(n) = o.get("test") {
        h.test = match &n.value {
            Value::Scalar { text, .. } => vec!["CMD-SHELL".to_owned(), text.clone()],
            _ => string_list(n, &p("test"), false)?,
        };
        if !matches!(
            h.test.first().map(String::as_str),
            Some("NONE" | "CMD" | "CMD-SHELL")
        ) {
            return Err(invalid(
                &n.pos,
                &p("test"),
                "expected a command string, or a list starting with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
            ));
        }
    }
    if let Some(n) = o.get("interval") {
        h.interval = Some(duration(n, &p("interval"))?);
    }
    if let Some(n) = o.get("timeout") {
        h.timeout = Some(duration(n, &p("timeout"))?);
    }
    if let Some(n) = o.get("start_period") {
        h.start_period = Some(duration(n, &p("start_period"))?);
    }
    if let Some(n) = o.get("start_interval") {
        h.start_interval = Some(duration(n, &p("start_interval"))?);
    }
    if let Some(n) = o.get("retries") {
        h.retries = Some(uint(n, &p("retries"))?);
    }
    if let Some(n) = o.get("disable") {
        h.disable = boolean(n, &p("disable"))?;
    }
    if h.disable {
        h.test = vec!["NONE".to_owned()];
    }
    Ok(h)
}

fn deploy(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    s: &mut ServiceDef,
) -> Result<(), ComposeError> {
    let o = w.obj(
        node,
        path,
        &[
            "mode",
            "replicas",
            "labels",
            "placement",
            "resources",
            "update_config",
            "rollback_config",
            "restart_policy",
            "endpoint_mode",
        ],
        &[],
    )?;
    let p = |key: &str| child(path, key);
    if let Some(n) = o.get("mode") {
        s.mode = one_of(
            n,
            &p("mode"),
            &[
                ("replicated", ServiceMode::Replicated),
                ("global", ServiceMode::Global),
                ("replicated-job", ServiceMode::ReplicatedJob),
                ("global-job", ServiceMode::GlobalJob),
            ],
        )?;
    }
    if let Some(n) = o.get("replicas") {
        if matches!(s.mode, ServiceMode::Global | ServiceMode::GlobalJob) {
            return Err(invalid(
                &n.pos,
                &p("replicas"),
                "expected no `replicas` with mode global: a global service runs one task per node",
            ));
        }
        s.replicas = Some(uint(n, &p("replicas"))?);
    }
    if let Some(n) = o.get("labels") {
        s.deploy_labels = labels(n, &p("labels"))?;
    }
    if let Some(n) = o.get("placement") {
        let pp = p("placement");
        let po = w.obj(
            n,
            &pp,
            &["constraints", "preferences", "max_replicas_per_node"],
            &[],
        )?;
        if let Some(c) = po.get("constraints") {
            s.constraints = string_list(c, &child(&pp, "constraints"), false)?;
        }
        if let Some(prefs) = po.get("preferences") {
            let prp = child(&pp, "preferences");
            let Value::Seq(items) = &prefs.value else {
                return Err(invalid(
                    &prefs.pos,
                    &prp,
                    format!(
                        "expected a list of `spread:` preferences, got {}",
                        describe(prefs)
                    ),
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let ip = index(&prp, i);
                let io = w.obj(item, &ip, &["spread"], &[])?;
                let spread = io
                    .get("spread")
                    .ok_or_else(|| invalid(&item.pos, &ip, "expected `spread: <label>`"))?;
                s.preferences.push(string(spread, &child(&ip, "spread"))?);
            }
        }
        if let Some(m) = po.get("max_replicas_per_node") {
            s.max_replicas_per_node = Some(uint(m, &child(&pp, "max_replicas_per_node"))?);
        }
    }
    if let Some(n) = o.get("resources") {
        let rp = p("resources");
        let ro = w.obj(n, &rp, &["limits", "reservations"], &[])?;
        if let Some(l) = ro.get("limits") {
            s.limits = resources(w, l, &child(&rp, "limits"), &["pids"])?;
        }
        if let Some(r) = ro.get("reservations") {
            s.reservations = resources(
                w,
                r,
                &child(&rp, "reservations"),
                &["devices", "generic_resources"],
            )?;
        }
    }
    if let Some(n) = o.get("update_config") {
        s.update_config = Some(update_config(w, n, &p("update_config"))?);
    }
    if let Some(n) = o.get("rollback_config") {
        s.rollback_config = Some(update_config(w, n, &p("rollback_config"))?);
    }
    if let Some(n) = o.get("restart_policy") {
        let rp = p("restart_policy");
        let ro = w.obj(
            n,
            &rp,
            &["condition", "delay", "max_attempts", "window"],
            &[],
        )?;
        let mut policy = RestartPolicy::default();
        if let Some(c) = ro.get("condition") {
            policy.condition = Some(one_of(
                c,
                &child(&rp, "condition"),
                &[
                    ("none", RestartCondition::None),
                    ("on-failure", RestartCondition::OnFailure),
                    ("any", RestartCondition::Any),
                ],
            )?);
        }
        if let Some(d) = ro.get("delay") {
            policy.delay = Some(duration(d, &child(&rp, "delay"))?);
        }
        if let Some(m) = ro.get("max_attempts") {
            policy.max_attempts = Some(uint(m, &child(&rp, "max_attempts"))?);
        }
        if let Some(win) = ro.get("window") {
            policy.window = Some(duration(win, &child(&rp, "window"))?);
        }
        s.restart_policy = Some(policy);
    }
    if let Some(n) = o.get("x-shoal-autoscale") {
        if matches!(s.mode, ServiceMode::Global | ServiceMode::GlobalJob) {
            return Err(invalid(
                &n.pos,
                &p("x-shoal-autoscale"),
                "a global service cannot be autoscaled: it runs one task per node",
            ));
        }
        s.autoscale = Some(autoscale(w, n, &p("x-shoal-autoscale"))?);
    }
    if let Some(n) = o.get("endpoint_mode") {
        s.endpoint_mode = Some(one_of(
            n,
            &p("endpoint_mode"),
            &[("vip", EndpointMode::Vip), ("dnsrr", EndpointMode::Dnsrr)],
        )?);
    }
    Ok(())
}

/// `x-shoal-autoscale: {min, max, cpu, memory, rps, scale_down_window}`.
fn autoscale(w: &mut Walker<'_>, node: &Node, path: &str) -> Result<Autoscale, ComposeError> {
    let o = w.obj(
        node,
        path,
        &["min", "max", "cpu", "memory", "rps", "scale_down_window"],
        &[],
    )?;
    let p = |key: &str| child(path, key);
    let required = |key: &str| {
        o.get(key).ok_or_else(|| {
            invalid(
                &node.pos,
                path,
                format!("expected `{key}`: autoscaling needs `min` and `max` replicas"),
            )
        })
    };
    let mut a = Autoscale {
        min: uint(required("min")?, &p("min"))?,
        max: uint(required("max")?, &p("max"))?,
        ..Default::default()
    };
    let percent = |n: &Node, path: &str| {
        n.scalar()
            .map(|t| t.trim())
            .map(|t| t.strip_suffix('%').unwrap_or(t).trim())
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                invalid(
                    &n.pos,
                    path,
                    format!(
                        "expected a percentage above 0 such as 60%, got {}",
                        describe(n)
                    ),
                )
            })
    };
    if let Some(n) = o.get("cpu") {
        a.cpu_percent = Some(percent(n, &p("cpu"))?);
    }
    if let Some(n) = o.get("memory") {
        a.memory_percent = Some(percent(n, &p("memory"))?);
    }
    if let Some(n) = o.get("rps") {
        a.rps = Some(
            n.scalar()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    invalid(
                        &n.pos,
                        &p("rps"),
                        format!(
                            "expected requests per second per task above 0, got {}",
                            describe(n)
                        ),
                    )
                })?,
        );
    }
    if let Some(n) = o.get("scale_down_window") {
        a.scale_down_window = Some(duration(n, &p("scale_down_window"))?);
    }
    if a.max == 0 || a.min > a.max {
        return Err(invalid(
            &node.pos,
            path,
            format!(
                "invalid range {}..{}: expected 0 <= min <= max and max >= 1",
                a.min, a.max
            ),
        ));
    }
    if a.cpu_percent.is_none() && a.memory_percent.is_none() && a.rps.is_none() {
        return Err(invalid(
            &node.pos,
            path,
            "expected a target: `cpu: 60%`, `memory: 80%` or `rps: 200`",
        ));
    }
    Ok(a)
}

fn resources(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    ignored: &[&str],
) -> Result<Resources, ComposeError> {
    let o = w.obj(node, path, &["cpus", "memory"], ignored)?;
    let mut r = Resources::default();
    if let Some(n) = o.get("cpus") {
        let cp = child(path, "cpus");
        r.nano_cpus = syntax::parse_cpus(&string(n, &cp)?).map_err(|e| invalid(&n.pos, &cp, e))?;
    }
    if let Some(n) = o.get("memory") {
        let mp = child(path, "memory");
        r.memory_bytes =
            syntax::parse_byte_size(&string(n, &mp)?).map_err(|e| invalid(&n.pos, &mp, e))?;
    }
    Ok(r)
}

fn update_config(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
) -> Result<UpdateConfig, ComposeError> {
    let o = w.obj(
        node,
        path,
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        &[],
    )?;
    let p = |key: &str| child(path, key);
    let mut u = UpdateConfig::default();
    if let Some(n) = o.get("parallelism") {
        u.parallelism = Some(uint(n, &p("parallelism"))?);
    }
    if let Some(n) = o.get("delay") {
        u.delay = Some(duration(n, &p("delay"))?);
    }
    if let Some(n) = o.get("failure_action") {
        u.failure_action = Some(one_of(
            n,
            &p("failure_action"),
            &[
                ("continue", FailureAction::Continue),
                ("pause", FailureAction::Pause),
                ("rollback", FailureAction::Rollback),
            ],
        )?);
    }
    if let Some(n) = o.get("monitor") {
        u.monitor = Some(duration(n, &p("monitor"))?);
    }
    if let Some(n) = o.get("max_failure_ratio") {
        let ratio = n
            .scalar()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r));
        u.max_failure_ratio = Some(ratio.ok_or_else(|| {
            invalid(
                &n.pos,
                &p("max_failure_ratio"),
                format!("expected a number between 0 and 1, got {}", describe(n)),
            )
        })?);
    }
    if let Some(n) = o.get("order") {
        u.order = Some(one_of(
            n,
            &p("order"),
            &[
                ("stop-first", UpdateOrder::StopFirst),
                ("start-first", UpdateOrder::StartFirst),
            ],
        )?);
    }
    Ok(u)
}

fn undefined(kind: &str, name: &str, pos: &Pos, path: &str, top: &str) -> ComposeError {
    invalid(
        pos,
        path,
        format!(
            "undefined {kind} `{name}`: expected a {kind} declared under the top-level `{top}:`"
        ),
    )
}

fn service_networks(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    refs: &Refs<'_>,
) -> Result<Vec<NetworkRef>, ComposeError> {
    let check = |name: &str, pos: &Pos, p: &str| {
        if name == "default" || refs.networks.contains_key(name) {
            Ok(())
        } else {
            Err(undefined("network", name, pos, p, "networks"))
        }
    };
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let ip = index(path, i);
                let name = string(item, &ip)?;
                check(&name, &item.pos, &ip)?;
                Ok(NetworkRef {
                    name,
                    aliases: Vec::new(),
                })
            })
            .collect(),
        Value::Map(entries) => {
            let mut out = Vec::new();
            for (key, value) in entries {
                let np = child(path, &key.name);
                check(&key.name, &key.pos, &np)?;
                let mut aliases = Vec::new();
                if value.value != Value::Null {
                    let o = w.obj(
                        value,
                        &np,
                        &["aliases"],
                        &[
                            "ipv4_address",
                            "ipv6_address",
                            "link_local_ips",
                            "mac_address",
                            "driver_opts",
                            "priority",
                            "gw_priority",
                            "interface_name",
                        ],
                    )?;
                    if let Some(a) = o.get("aliases") {
                        aliases = string_list(a, &child(&np, "aliases"), false)?;
                    }
                }
                out.push(NetworkRef {
                    name: key.name.clone(),
                    aliases,
                });
            }
            Ok(out)
        }
        _ => Err(invalid(
            &node.pos,
            path,
            format!(
                "expected a list or mapping of network names, got {}",
                describe(node)
            ),
        )),
    }
}

fn file_mode(node: &Node, path: &str) -> Result<u32, ComposeError> {
    let text = string(node, path)?;
    // `mode: 0440` is meant as octal, as in Compose's YAML 1.1 parser.
    let parsed = if let Some(oct) = text.strip_prefix("0o") {
        u32::from_str_radix(oct, 8).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse::<u32>().ok()
    };
    parsed.filter(|m| *m <= 0o7777).ok_or_else(|| {
        invalid(
            &node.pos,
            path,
            format!("expected a file mode like 0440, got {text:?}"),
        )
    })
}

fn file_refs(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    kind: &str,
    defined: &BTreeMap<String, FileObjectDef>,
) -> Result<Vec<FileRef>, ComposeError> {
    let top = format!("{kind}s");
    let Value::Seq(items) = &node.value else {
        return Err(invalid(
            &node.pos,
            path,
            format!("expected a list of {kind} names, got {}", describe(node)),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        let r = match &item.value {
            Value::Map(_) => {
                let o = w.obj(item, &ip, &["source", "target", "uid", "gid", "mode"], &[])?;
                let source = o.get("source").ok_or_else(|| {
                    invalid(
                        &item.pos,
                        &ip,
                        format!("expected `source`: the name of a top-level {kind}"),
                    )
                })?;
                FileRef {
                    source: string(source, &child(&ip, "source"))?,
                    target: o
                        .get("target")
                        .map(|n| string(n, &child(&ip, "target")))
                        .transpose()?,
                    uid: o
                        .get("uid")
                        .map(|n| string(n, &child(&ip, "uid")))
                        .transpose()?,
                    gid: o
                        .get("gid")
                        .map(|n| string(n, &child(&ip, "gid")))
                        .transpose()?,
                    mode: o
                        .get("mode")
                        .map(|n| file_mode(n, &child(&ip, "mode")))
                        .transpose()?,
                }
            }
            _ => FileRef {
                source: string(item, &ip)?,
                target: None,
                uid: None,
                gid: None,
                mode: None,
            },
        };
        if !defined.contains_key(&r.source) {
            return Err(undefined(kind, &r.source, &item.pos, &ip, &top));
        }
        out.push(r);
    }
    Ok(out)
}

fn mounts(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    refs: &Refs<'_>,
) -> Result<Vec<Mount>, ComposeError> {
    let Value::Seq(items) = &node.value else {
        return Err(invalid(
            &node.pos,
            path,
            format!("expected a list of volume mounts, got {}", describe(node)),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = index(path, i);
        let mut tmpfs_size = None;
        let mut tmpfs_mode = None;
        let (kind, source, target, read_only) = match &item.value {
            Value::Map(_) => {
                let o = w.obj(
                    item,
                    &ip,
                    &[
                        "type",
                        "source",
                        "target",
                        "read_only",
                        "volume",
                        "bind",
                        "tmpfs",
                    ],
                    &["consistency", "image"],
                )?;
                let kind = match o.get("type") {
                    Some(t) => string(t, &child(&ip, "type"))?,
                    None => "volume".to_owned(),
                };
                if let Some(t) = o.get("tmpfs") {
                    let tp = child(&ip, "tmpfs");
                    let options = w.obj(t, &tp, &["size", "mode"], &[])?;
                    if let Some(size) = options.get("size") {
                        let text = string(size, &child(&tp, "size"))?;
                        tmpfs_size =
                            Some(syntax::parse_byte_size(&text).map_err(|e| {
                                invalid(&size.pos, &child(&tp, "size"), e.to_string())
                            })?);
                    }
                    if let Some(mode) = options.get("mode") {
                        let text = string(mode, &child(&tp, "mode"))?;
                        // YAML reads 1777 as a decimal number: its digits are
                        // the octal mode, as Docker reads them.
                        tmpfs_mode = Some(
                            u32::from_str_radix(text.trim_start_matches("0o"), 8).map_err(
                                |_| {
                                    invalid(
                                        &mode.pos,
                                        &child(&tp, "mode"),
                                        format!("expected octal permissions, got {text:?}"),
                                    )
                                },
                            )?,
                        );
                    }
                }
                let target = o
                    .get("target")
                    .ok_or_else(|| invalid(&item.pos, &ip, "expected a `target` path"))?;
                let read_only = o
                    .get("read_only")
                    .map(|r| boolean(r, &child(&ip, "read_only")))
                    .transpose()?;
                (
                    kind,
                    o.get("source")
                        .map(|s| string(s, &child(&ip, "source")))
                        .transpose()?,
                    string(target, &child(&ip, "target"))?,
                    read_only.unwrap_or(false),
                )
            }
            _ => {
                let text = string(item, &ip)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, opts) = match parts.as_slice() {
                    [t] => (None, *t, ""),
                    [s, t] => (Some(*s), *t, ""),
                    [s, t, o] => (Some(*s), *t, *o),
                    _ => {
                        return Err(invalid(
                            &item.pos,
                            &ip,
                            format!("expected SOURCE:TARGET[:MODE] or TARGET, got {text:?}"),
                        ))
                    }
                };
                let is_path = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
                let kind = if is_path { "bind" } else { "volume" };
                let read_only = opts.split(',').any(|o| o == "ro");
                (
                    kind.to_owned(),
                    source.map(str::to_owned),
                    target.to_owned(),
                    read_only,
                )
            }
        };
        if target.is_empty() {
            return Err(invalid(&item.pos, &ip, "expected a non-empty target path"));
        }
        let mount = |kind, source| Mount {
            kind,
            source,
            target: target.clone(),
            read_only,
            tmpfs_size,
            tmpfs_mode,
        };
        match kind.as_str() {
            "volume" => {
                if let Some(name) = &source {
                    if !refs.volumes.contains_key(name) {
                        return Err(undefined("volume", name, &item.pos, &ip, "volumes"));
                    }
                }
                out.push(mount(MountKind::Volume, source));
            }
            "bind" => out.push(mount(MountKind::Bind, source)),
            "tmpfs" => out.push(mount(MountKind::Tmpfs, None)),
            "npipe" | "cluster" | "image" => w.warn("volumes", &ip, &item.pos),
            other => {
                return Err(invalid(
                    &item.pos,
                    &child(&ip, "type"),
                    format!(
                        "expected one of volume, bind, tmpfs, npipe, cluster, image, got {other:?}"
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn depends_on(
    w: &mut Walker<'_>,
    node: &Node,
    path: &str,
    refs: &Refs<'_>,
) -> Result<BTreeMap<String, Condition>, ComposeError> {
    let unknown = |name: &str, pos: &Pos, p: &str| {
        invalid(
            pos,
            p,
            format!(
                "depends on unknown service `{name}`; expected one of: {}",
                refs.services.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    };
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let ip = index(path, i);
                let name = string(item, &ip)?;
                if !refs.services.contains(&name) {
                    return Err(unknown(&name, &item.pos, &ip));
                }
                out.insert(name, Condition::ServiceStarted);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                let dp = child(path, &key.name);
                let mut condition = Condition::ServiceStarted;
                let mut required = true;
                if value.value != Value::Null {
                    let o = w.obj(value, &dp, &["condition", "required"], &["restart"])?;
                    if let Some(c) = o.get("condition") {
                        condition = one_of(
                            c,
                            &child(&dp, "condition"),
                            &[
                                ("service_started", Condition::ServiceStarted),
                                ("service_healthy", Condition::ServiceHealthy),
                                (
                                    "service_completed_successfully",
                                    Condition::ServiceCompletedSuccessfully,
                                ),
                            ],
                        )?;
                    }
                    if let Some(r) = o.get("required") {
                        required = boolean(r, &child(&dp, "required"))?;
                    }
                }
                if !refs.services.contains(&key.name) {
                    // `required: false` tolerates a service that is absent.
                    if required {
                        return Err(unknown(&key.name, &key.pos, &dp));
                    }
                    continue;
                }
                out.insert(key.name.clone(), condition);
            }
        }
        _ => {
            return Err(invalid(
                &node.pos,
                path,
                format!(
                    "expected a list or mapping of service names, got {}",
                    describe(node)
                ),
            ))
        }
    }
    Ok(out)
}
