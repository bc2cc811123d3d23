//! What the leader knows of the nodes' volumes: each agent's last report
//! (sent with its heartbeats), the removals asked for and not yet answered,
//! and the answers. Memory only, never Raft: a volume is a node's local
//! state that the node itself knows best, reports are re-sent every few
//! heartbeats, so a new leader knows them again within seconds, and a lost
//! removal request is simply asked again.
//!
//! Why heartbeats and not a call from the manager to each node: managers
//! never dial agents (agents dial in, through NAT and firewalls alike), and
//! the heartbeat is the one path that already reaches the leader from every
//! live node.
//!
//! Pure bookkeeping with `now_ms` passed in; the dispatcher feeds it and the
//! control API reads it.

use std::collections::{BTreeMap, HashMap};

use shoal_proto::v1::{Volume, VolumeRemoval};

/// How long an answered removal is kept for the caller to collect.
const RESULT_TTL_MS: i64 = 120_000;

#[derive(Debug, Default)]
pub struct VolumeInventory {
    reports: BTreeMap<String, (Vec<Volume>, i64)>,
    /// Names to remove, per node, until the node answers.
    pending: HashMap<String, Vec<String>>,
    /// `(node, name)` → (error or empty, when answered).
    results: HashMap<(String, String), (String, i64)>,
}

impl VolumeInventory {
    /// A node's full list of volumes.
    pub fn report(&mut self, node_id: &str, volumes: Vec<Volume>, now_ms: i64) {
        self.reports.insert(node_id.to_string(), (volumes, now_ms));
    }

    /// A node's answers to removals: they are no longer pending, and the
    /// volumes removed leave its report at once.
    pub fn answered(&mut self, node_id: &str, removals: Vec<VolumeRemoval>, now_ms: i64) {
        for removal in removals {
            if let Some(pending) = self.pending.get_mut(node_id) {
                pending.retain(|n| n != &removal.name);
            }
            if removal.error.is_empty() {
                if let Some((volumes, _)) = self.reports.get_mut(node_id) {
                    volumes.retain(|v| v.name != removal.name);
                }
            }
            self.results.insert(
                (node_id.to_string(), removal.name.clone()),
                (removal.error, now_ms),
            );
        }
        self.results
            .retain(|_, (_, at)| now_ms.saturating_sub(*at) < RESULT_TTL_MS);
    }

    /// Every node's last report, by node ID.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Vec<Volume>, i64)> {
        self.reports.iter().map(|(n, (v, at))| (n, v, *at))
    }

    /// The nodes whose last report has the volume `name`.
    pub fn nodes_with(&self, name: &str) -> Vec<String> {
        self.reports
            .iter()
            .filter(|(_, (volumes, _))| volumes.iter().any(|v| v.name == name))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A volume named `name` with another driver than `driver`, as
    /// `(node, its driver)`: the same name would mean another volume.
    pub fn driver_clash(&self, name: &str, driver: &str) -> Option<(String, String)> {
        self.reports.iter().find_map(|(node, (volumes, _))| {
            volumes
                .iter()
                .find(|v| v.name == name && v.runtime == "docker" && v.driver != driver)
                .map(|v| (node.clone(), v.driver.clone()))
        })
    }

    /// Asks `node_id` to remove `name` (idempotent); a previous answer is
    /// forgotten so that the caller waits for a new one.
    pub fn request_removal(&mut self, node_id: &str, name: &str) {
        let pending = self.pending.entry(node_id.to_string()).or_default();
        if !pending.iter().any(|n| n == name) {
            pending.push(name.to_string());
        }
        self.results
            .remove(&(node_id.to_string(), name.to_string()));
    }

    /// What to ask `node_id` to remove in its heartbeat's response.
    pub fn removals_for(&self, node_id: &str) -> Vec<String> {
        self.pending.get(node_id).cloned().unwrap_or_default()
    }

    /// The node's answer to a removal of `name`, once it came.
    pub fn result(&self, node_id: &str, name: &str) -> Option<String> {
        self.results
            .get(&(node_id.to_string(), name.to_string()))
            .map(|(e, _)| e.clone())
    }

    /// Forgets a node (removed from the swarm).
    pub fn forget(&mut self, node_id: &str) {
        self.reports.remove(node_id);
        self.pending.remove(node_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str, driver: &str, runtime: &str) -> Volume {
        Volume {
            name: name.into(),
            driver: driver.into(),
            runtime: runtime.into(),
            ..Default::default()
        }
    }

    #[test]
    fn removal_is_pending_until_answered_then_leaves_the_report() {
        let mut inv = VolumeInventory::default();
        inv.report("n1", vec![volume("data", "local", "process")], 1);
        inv.request_removal("n1", "data");
        inv.request_removal("n1", "data");
        assert_eq!(inv.removals_for("n1"), vec!["data".to_string()]);
        assert_eq!(inv.result("n1", "data"), None);
        inv.answered(
            "n1",
            vec![VolumeRemoval {
                node_id: "n1".into(),
                name: "data".into(),
                error: String::new(),
            }],
            2,
        );
        assert!(inv.removals_for("n1").is_empty());
        assert_eq!(inv.result("n1", "data"), Some(String::new()));
        assert!(inv.nodes_with("data").is_empty());
    }

    #[test]
    fn a_clash_is_a_docker_volume_of_another_driver() {
        let mut inv = VolumeInventory::default();
        inv.report(
            "n1",
            vec![
                volume("db", "local", "docker"),
                volume("p", "local", "process"),
            ],
            1,
        );
        assert_eq!(
            inv.driver_clash("db", "nfs"),
            Some(("n1".into(), "local".into()))
        );
        assert_eq!(inv.driver_clash("db", "local"), None);
        assert_eq!(inv.driver_clash("other", "nfs"), None);
    }
}
