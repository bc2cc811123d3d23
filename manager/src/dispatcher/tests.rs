use super::*;

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn down(lost: &[(String, Loss)]) -> Vec<String> {
    lost.iter().map(|(id, _)| id.clone()).collect()
}

fn alive(last_heartbeat: Instant) -> Seen {
    Seen {
        last_heartbeat,
        closed_at: None,
        flapping: false,
    }
}

const PERIOD: Duration = Duration::from_secs(1);

#[test]
fn after_a_leader_change_nodes_without_a_session_get_six_periods() {
    let t0 = Instant::now();
    let ready = ids(&["a", "b"]);
    let none = HashMap::new();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Three periods, the old grace: nobody is Down yet.
    assert!(expired(&ready, &none, t0, at(3_500), PERIOD).is_empty());
    assert!(expired(&ready, &none, t0, at(6_000), PERIOD).is_empty());
    assert_eq!(down(&expired(&ready, &none, t0, at(6_001), PERIOD)), ready);
}

#[test]
fn a_node_heartbeating_to_this_leader_is_down_after_three_silent_periods() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ready = ids(&["a", "b"]);
    // a opened a session at +1 s and last heartbeat at +2 s; b has none.
    let seen: HashMap<&str, Seen> = [("a", alive(at(2_000)))].into_iter().collect();
    assert!(expired(&ready, &seen, t0, at(5_000), PERIOD).is_empty());
    assert_eq!(
        expired(&ready, &seen, t0, at(5_001), PERIOD),
        vec![("a".to_string(), Loss::Heartbeats)]
    );
    assert_eq!(down(&expired(&ready, &seen, t0, at(6_001), PERIOD)), ready);
    // Only Ready nodes are ever marked.
    assert!(expired(&[], &seen, t0, at(60_000), PERIOD).is_empty());
}

#[test]
fn heartbeats_from_an_earlier_leadership_do_not_count() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ready = ids(&["a", "b"]);
    // This manager led before (a heartbeat at +0), lost the lead, and
    // leads again since +20 s: a is judged as having no session yet.
    let seen: HashMap<&str, Seen> = [("a", alive(at(0)))].into_iter().collect();
    assert!(expired(&ready, &seen, at(20_000), at(20_250), PERIOD).is_empty());
    assert!(expired(&ready, &seen, at(20_000), at(26_000), PERIOD).is_empty());
    assert_eq!(
        down(&expired(&ready, &seen, at(20_000), at(26_001), PERIOD)),
        ready
    );
}

#[test]
fn a_closed_connection_is_down_after_the_reconnect_grace_not_the_heartbeat_window() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ready = ids(&["crashed", "silent"]);
    // Both heartbeated at +1 s; the crashed node's stream closed at +1.1 s,
    // the silent node's never did (its packets are dropped).
    let seen: HashMap<&str, Seen> = [
        (
            "crashed",
            Seen {
                closed_at: Some(at(1_100)),
                ..alive(at(1_000))
            },
        ),
        ("silent", alive(at(1_000))),
    ]
    .into_iter()
    .collect();
    assert_eq!(reconnect_grace(PERIOD), Duration::from_millis(250));
    assert!(expired(&ready, &seen, t0, at(1_350), PERIOD).is_empty());
    assert_eq!(
        expired(&ready, &seen, t0, at(1_351), PERIOD),
        vec![("crashed".to_string(), Loss::ConnectionClosed)]
    );
    // The silent node waits for the whole heartbeat window.
    assert_eq!(
        expired(&ready, &seen, t0, at(4_001), PERIOD),
        vec![
            ("crashed".to_string(), Loss::ConnectionClosed),
            ("silent".to_string(), Loss::Heartbeats)
        ]
    );
    // The loop wakes just after the crashed node's grace ends.
    assert_eq!(next_deadline(&seen, PERIOD), Some(at(1_351)));
    assert_eq!(
        next_deadline(
            &[("silent", alive(at(1_000)))].into_iter().collect(),
            PERIOD
        ),
        None
    );
}

#[test]
fn a_node_that_reconnects_within_the_grace_keeps_its_session() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ready = ids(&["a"]);
    // Its stream closed at +1 s and a new session opened at +1.2 s: the
    // new session replaced the closed one, so nothing is judged closed.
    let seen: HashMap<&str, Seen> = [("a", alive(at(1_200)))].into_iter().collect();
    assert!(expired(&ready, &seen, t0, at(2_000), PERIOD).is_empty());
    assert_eq!(next_deadline(&seen, PERIOD), None);
}

#[test]
fn a_flapping_connection_is_judged_by_heartbeats_alone() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Three closes within a minute: flapping; two, or three spread over
    // more than a minute, are not.
    assert!(flapping(&[at(0), at(10_000), at(20_000)], at(30_000)));
    assert!(!flapping(&[at(10_000), at(20_000)], at(30_000)));
    assert!(!flapping(&[at(0), at(10_000), at(20_000)], at(60_001)));
    let ready = ids(&["a"]);
    let seen: HashMap<&str, Seen> = [(
        "a",
        Seen {
            last_heartbeat: at(1_000),
            closed_at: Some(at(1_100)),
            flapping: true,
        },
    )]
    .into_iter()
    .collect();
    assert!(expired(&ready, &seen, t0, at(2_000), PERIOD).is_empty());
    assert_eq!(next_deadline(&seen, PERIOD), None);
    assert_eq!(
        expired(&ready, &seen, t0, at(4_001), PERIOD),
        vec![("a".to_string(), Loss::Heartbeats)]
    );
}

#[test]
fn the_grace_scales_with_the_heartbeat_period() {
    assert_eq!(
        reconnect_grace(Duration::from_secs(5)),
        Duration::from_millis(1_250)
    );
}

#[test]
fn a_judge_that_woke_late_counts_only_the_lateness_past_its_tolerance() {
    let due = Instant::now();
    let tolerance = Duration::from_millis(250);
    assert_eq!(stall(due, due, tolerance), Duration::ZERO);
    assert_eq!(
        stall(due, due + Duration::from_millis(200), tolerance),
        Duration::ZERO,
        "within the tolerance"
    );
    assert_eq!(
        stall(due, due + Duration::from_secs(4), tolerance),
        Duration::from_millis(3_750)
    );
    // Woken early (a closed stream): nothing stalled.
    assert_eq!(
        stall(due + Duration::from_secs(1), due, tolerance),
        Duration::ZERO
    );
}
