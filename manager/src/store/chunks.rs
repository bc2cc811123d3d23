//! Splitting the leader loops' large writes into bounded pieces.
//!
//! A service of 100,000 replicas is created by one reconcile pass and
//! placed by one scheduling pass. As one command each, every one was a
//! Raft entry of about 100 MB (encoded, sealed and written as one sled
//! blob) and one apply that held the store's write lock for seconds: no
//! call could read the store meanwhile, heartbeats included, and hundreds
//! of healthy simulated nodes timed out (issue 20). In pieces of
//! [`MAX_TASKS_PER_WRITE`], each is its own entry and its own short apply,
//! and readers get the lock between them. Nothing needs the pieces to
//! land together: the loops are level-triggered, so a leader change
//! between two pieces leaves the rest to the next leader's pass.
//! Placements are split by node, so that a node's set changes in one or
//! two pieces rather than in all of them.

use prost::Message;
use shoal_proto::v1::Task;

use super::Command;

/// Tasks one leader-loop command may touch.
pub const MAX_TASKS_PER_WRITE: usize = 5_000;

/// The encoded bytes of the new tasks one leader-loop command may carry. A
/// task carries its whole spec, and a spec may hold kilobytes (an
/// environment, a long command): 320 tasks of a 16 KB spec were one 5 MB
/// entry, more than a follower can be sent within openraft's 50 ms
/// per-append limit on a slow machine, so it never replicated (see
/// `raft::network::MAX_APPEND_BYTES`, which bounds what one append carries
/// but cannot split an entry).
pub const MAX_BYTES_PER_WRITE: usize = 256 * 1024;

/// `commands` with every per-task list longer than `max` split into
/// commands of at most `max` items, in order; other commands unchanged.
pub fn chunked(commands: Vec<Command>, max: usize) -> Vec<Command> {
    let max = max.max(1);
    let mut out = Vec::with_capacity(commands.len());
    for command in commands {
        match command {
            Command::CreateTasks(tasks) => {
                out.extend(task_pieces(tasks, max, MAX_BYTES_PER_WRITE).map(Command::CreateTasks));
            }
            Command::SetTasksDesiredState {
                task_ids,
                state,
                at_ms,
            } if task_ids.len() > max => {
                out.extend(
                    pieces(task_ids, max).map(|task_ids| Command::SetTasksDesiredState {
                        task_ids,
                        state,
                        at_ms,
                    }),
                );
            }
            Command::AssignTasks {
                mut assignments,
                at_ms,
            } if assignments.len() > max => {
                // By node, so that each piece changes the sets of a few
                // nodes, not a few tasks of every node: every changed set
                // is sent to its node again, whole.
                assignments.sort_by(|a, b| a.1.cmp(&b.1));
                out.extend(
                    pieces(assignments, max)
                        .map(|assignments| Command::AssignTasks { assignments, at_ms }),
                );
            }
            Command::SetPendingReasons { reasons, at_ms } if reasons.len() > max => {
                out.extend(
                    pieces(reasons, max)
                        .map(|reasons| Command::SetPendingReasons { reasons, at_ms }),
                );
            }
            Command::DeleteTasks { task_ids } if task_ids.len() > max => {
                out.extend(pieces(task_ids, max).map(|task_ids| Command::DeleteTasks { task_ids }));
            }
            other => out.push(other),
        }
    }
    out
}

/// `tasks` in consecutive pieces of at most `max` tasks and, unless a
/// single task is larger, `max_bytes` encoded bytes.
fn task_pieces(tasks: Vec<Task>, max: usize, max_bytes: usize) -> impl Iterator<Item = Vec<Task>> {
    let mut tasks = tasks.into_iter().peekable();
    std::iter::from_fn(move || {
        let mut piece = vec![tasks.next()?];
        let mut bytes = piece[0].encoded_len();
        while let Some(next) = tasks.peek() {
            let size = next.encoded_len();
            if piece.len() >= max || bytes + size > max_bytes {
                break;
            }
            bytes += size;
            piece.extend(tasks.next());
        }
        Some(piece)
    })
}

/// `items` in consecutive pieces of at most `max`.
fn pieces<T>(items: Vec<T>, max: usize) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.into_iter().peekable();
    std::iter::from_fn(move || {
        items.peek()?;
        Some(items.by_ref().take(max).collect())
    })
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{Task, TaskState};

    use super::*;

    fn task(id: usize) -> Task {
        Task {
            id: format!("t{id}"),
            ..Default::default()
        }
    }

    #[test]
    fn long_lists_are_split_in_order_and_nothing_is_lost() {
        let commands = vec![
            Command::SetTasksDesiredState {
                task_ids: (0..5).map(|i| format!("r{i}")).collect(),
                state: TaskState::Shutdown,
                at_ms: 7,
            },
            Command::CreateTasks((0..7).map(task).collect()),
            Command::AssignTasks {
                assignments: vec![("t0".into(), "n1".into())],
                at_ms: 7,
            },
        ];
        let split = chunked(commands, 3);
        let sizes: Vec<(String, usize)> = split
            .iter()
            .map(|c| match c {
                Command::SetTasksDesiredState { task_ids, .. } => ("retire".into(), task_ids.len()),
                Command::CreateTasks(tasks) => ("create".into(), tasks.len()),
                Command::AssignTasks { assignments, .. } => ("assign".into(), assignments.len()),
                _ => ("other".into(), 0),
            })
            .collect();
        let expected: Vec<(String, usize)> = [
            ("retire", 3),
            ("retire", 2),
            ("create", 3),
            ("create", 3),
            ("create", 1),
            ("assign", 1),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
        assert_eq!(sizes, expected);
        let created: Vec<String> = split
            .iter()
            .filter_map(|c| match c {
                Command::CreateTasks(tasks) => Some(tasks.iter().map(|t| t.id.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(created, (0..7).map(|i| format!("t{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn new_tasks_with_large_specs_are_split_by_bytes_and_a_huge_one_goes_alone() {
        let sized = |id: usize, bytes: usize| Task {
            spec: Some(shoal_proto::v1::TaskSpec {
                env: vec!["x".repeat(bytes)],
                ..Default::default()
            }),
            ..task(id)
        };
        let tasks = vec![
            sized(0, 100_000),
            sized(1, 100_000),
            sized(2, 100_000),
            sized(3, 400_000),
            sized(4, 10),
        ];
        let sizes: Vec<Vec<String>> = chunked(vec![Command::CreateTasks(tasks)], 3)
            .iter()
            .map(|c| match c {
                Command::CreateTasks(tasks) => tasks.iter().map(|t| t.id.clone()).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(
            sizes,
            vec![vec!["t0", "t1"], vec!["t2"], vec!["t3"], vec!["t4"]]
        );
    }

    #[test]
    fn short_lists_and_other_commands_pass_unchanged() {
        let commands = vec![
            Command::CreateTasks((0..3).map(task).collect()),
            Command::DeleteTasks { task_ids: vec![] },
        ];
        let split = chunked(commands, 3);
        assert_eq!(split.len(), 2);
        assert!(matches!(&split[0], Command::CreateTasks(t) if t.len() == 3));
        assert!(matches!(&split[1], Command::DeleteTasks { task_ids } if task_ids.is_empty()));
    }
}
