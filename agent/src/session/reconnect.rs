//! Which manager an agent tries next, and how long it waits first: pure
//! decisions (the caller passes the random source), so they are tested
//! without a network.
//!
//! After a session breaks, the manager that just failed is the worst bet:
//! when a leader's host is cut off, a stale leader hint or a plain rotation
//! would send the agent back to it and cost a connect timeout per try, while
//! the new leader's grace runs out. So a leader hint from any manager comes
//! first unless it names the manager that just failed, the rotation skips
//! that manager while others are known, and the pause before a try grows
//! with consecutive failures and is jittered, so that every agent of a
//! cluster does not knock on the new leader in the same millisecond.
//!
//! Skipping the failed manager lasts only [`STALE_HINT_PATIENCE`]: when the
//! managers that answer go on naming it the leader for longer than an
//! election takes, it is the leader, and only this agent's own link to it
//! broke (its host was cut off for a moment); the agent goes back to it.

use std::time::{Duration, Instant};

use rand::Rng;

/// Pause before the first retry after a failure (before jitter).
pub const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between tries (before jitter).
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long after a manager failed a hint naming it is still taken for a
/// follower's stale view (a follower names the old leader until its
/// election timeout, under half a second, runs out; an election takes about
/// a second more). Past it, the hint is believed.
pub const STALE_HINT_PATIENCE: Duration = Duration::from_secs(2);

/// How an attempt without a leader hint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The manager could not be reached, or its session broke.
    Failed,
    /// The manager answered but opened no session and named no leader (a
    /// follower during an election): it is alive, so it does not take the
    /// "failed" mark off the manager that really failed.
    Answered,
}

/// The agent's reconnection state across session attempts.
#[derive(Debug, Default, Clone)]
pub struct Reconnect {
    /// Where the rotation through the manager list stands.
    turn: usize,
    /// The manager whose session (or connection) failed last, and when.
    failed: Option<(String, Instant)>,
    /// A leader address some manager named, to try next.
    hint: Option<String>,
    /// Failures since the last session that was established.
    failures: u32,
}

impl Reconnect {
    /// The manager to try now, from the current manager list.
    pub fn next(&mut self, managers: &[String]) -> Option<String> {
        if let Some(hint) = self.hint.take() {
            if self.failed_addr() != Some(hint.as_str()) {
                return Some(hint);
            }
        }
        if managers.is_empty() {
            return None;
        }
        for _ in 0..managers.len() {
            let candidate = &managers[self.turn % managers.len()];
            self.turn = self.turn.wrapping_add(1);
            if managers.len() == 1 || self.failed_addr() != Some(candidate.as_str()) {
                return Some(candidate.clone());
            }
        }
        Some(managers[0].clone())
    }

    fn failed_addr(&self) -> Option<&str> {
        self.failed.as_ref().map(|(addr, _)| addr.as_str())
    }

    /// A session with `addr` was established.
    pub fn established(&mut self) {
        self.failures = 0;
        self.failed = None;
    }

    /// The attempt at `addr` ended at `now`, `hint` naming the leader if
    /// the answer carried one. Returns how long to wait before the next try.
    pub fn ended(
        &mut self,
        addr: &str,
        hint: Option<&str>,
        attempt: Attempt,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Duration {
        match hint.filter(|h| *h != addr) {
            // Sent on by a manager that answered: go at once.
            Some(leader) if self.failed_addr() != Some(leader) => {
                self.hint = Some(leader.to_string());
                Duration::ZERO
            }
            // Still named the leader well after it failed: it is, and it
            // was this agent's link that broke. Go back at once.
            Some(leader)
                if self
                    .failed
                    .as_ref()
                    .is_some_and(|(_, at)| now.duration_since(*at) >= STALE_HINT_PATIENCE) =>
            {
                self.failed = None;
                self.hint = Some(leader.to_string());
                Duration::ZERO
            }
            // A stale hint back to the manager that just failed: `addr`
            // answered but knows no better yet (an election is running).
            Some(_) => {
                self.failures = self.failures.saturating_add(1);
                backoff(self.failures, rng)
            }
            None if attempt == Attempt::Answered => {
                self.failures = self.failures.saturating_add(1);
                backoff(self.failures, rng)
            }
            None => {
                self.failed = Some((addr.to_string(), now));
                self.failures = self.failures.saturating_add(1);
                backoff(self.failures, rng)
            }
        }
    }
}

/// The pause after `failures` consecutive failures: doubling from
/// [`BASE_BACKOFF`] up to [`MAX_BACKOFF`], then a random half to whole of it.
pub fn backoff(failures: u32, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = BASE_BACKOFF.saturating_mul(1u32 << exp).min(MAX_BACKOFF);
    let ms = full.as_millis() as u64;
    Duration::from_millis(rng.gen_range(ms / 2..=ms))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    impl Reconnect {
        /// `ended` at a moment within the stale-hint patience of any
        /// failure these tests make.
        fn ended_now(&mut self, addr: &str, hint: Option<&str>, rng: &mut StdRng) -> Duration {
            self.ended(addr, hint, Attempt::Failed, *EPOCH, rng)
        }
    }

    static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    fn list() -> Vec<String> {
        ["a:1", "b:1", "c:1"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn the_manager_that_just_failed_is_skipped_and_a_stale_hint_to_it_ignored() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut r = Reconnect::default();
        assert_eq!(r.next(&list()).as_deref(), Some("a:1"));
        // a is a follower and names c the leader: c next, at once.
        assert_eq!(r.ended_now("a:1", Some("c:1"), &mut rng), Duration::ZERO);
        assert_eq!(r.next(&list()).as_deref(), Some("c:1"));
        r.established();
        // c's host is cut off.
        assert!(r.ended_now("c:1", None, &mut rng) > Duration::ZERO);
        let next = r.next(&list()).unwrap();
        assert_ne!(next, "c:1");
        // That manager still believes in c: the hint is not followed back,
        // and the next try waits a little (an election is running).
        assert!(r.ended_now(&next, Some("c:1"), &mut rng) > Duration::ZERO);
        let after = r.next(&list()).unwrap();
        assert_ne!(after, "c:1", "went back to the manager that just failed");
        // A hint to a live leader is followed.
        r.ended_now(&after, Some("b:1"), &mut rng);
        assert_eq!(r.next(&list()).as_deref(), Some("b:1"));
    }

    #[test]
    fn a_rotation_never_picks_the_failed_manager_while_others_exist() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut r = Reconnect::default();
        r.next(&list());
        r.ended_now("b:1", None, &mut rng);
        for _ in 0..10 {
            let next = r.next(&list()).unwrap();
            assert_ne!(next, "b:1");
            r.hint = None;
        }
        // With one manager there is nobody else to try.
        let one = vec!["b:1".to_string()];
        assert_eq!(r.next(&one).as_deref(), Some("b:1"));
        assert_eq!(Reconnect::default().next(&[]), None);
    }

    #[test]
    fn a_hint_to_the_failed_manager_is_believed_once_it_outlasts_an_election() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut r = Reconnect::default();
        let t0 = *EPOCH;
        assert_eq!(r.next(&list()).as_deref(), Some("a:1"));
        r.established();
        // This agent's host was cut off from the leader a for a moment.
        r.ended("a:1", None, Attempt::Failed, t0, &mut rng);
        let mut at = t0;
        // b and c keep naming a: within the patience that is taken for a
        // stale view, and the agent keeps away from a.
        while at.duration_since(t0) < STALE_HINT_PATIENCE {
            let next = r.next(&list()).unwrap();
            assert_ne!(next, "a:1");
            assert!(r.ended(&next, Some("a:1"), Attempt::Failed, at, &mut rng) > Duration::ZERO);
            at += Duration::from_millis(300);
        }
        // Past it, a is the leader: back there at once.
        let next = r.next(&list()).unwrap();
        assert_eq!(
            r.ended(&next, Some("a:1"), Attempt::Failed, at, &mut rng),
            Duration::ZERO
        );
        assert_eq!(r.next(&list()).as_deref(), Some("a:1"));
    }

    #[test]
    fn a_follower_without_a_leader_yet_does_not_clear_the_dead_leaders_mark() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut r = Reconnect::default();
        r.next(&list());
        r.established();
        // The leader a's host is cut off; b answers, mid-election, with no
        // leader to name. Before, b became "the failed one" and the
        // rotation went back to a (a connect timeout) next.
        r.ended("a:1", None, Attempt::Failed, *EPOCH, &mut rng);
        for _ in 0..6 {
            let next = r.next(&list()).unwrap();
            assert_ne!(next, "a:1", "back to the manager whose host is cut off");
            assert!(r.ended(&next, None, Attempt::Answered, *EPOCH, &mut rng) > Duration::ZERO);
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let mut rng = StdRng::seed_from_u64(3);
        for failures in 1..20 {
            let full = BASE_BACKOFF
                .saturating_mul(1 << (failures - 1).min(16))
                .min(MAX_BACKOFF);
            let pause = backoff(failures, &mut rng);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?}");
        }
        let pauses: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff(5, &mut rng)).collect();
        assert!(pauses.len() > 1, "no jitter");
    }
}
