//! From a decoded DNS query to the reply, or to "forward it": the embedded
//! resolver's decisions at the message level, as pure functions.
//!
//! What is answered locally (the name rules are in [`super::lookup`]):
//! - `A` (and `ANY`) for an overlay name: its addresses;
//! - any other type for an overlay name: an empty NOERROR answer (NODATA).
//!   For `AAAA` and `MX` this is what Docker does: overlay tasks have no IPv6
//!   address, and an NXDOMAIN for the AAAA half of a glibc `getaddrinfo`
//!   lookup (which asks A and AAAA in parallel) makes it fail the whole lookup
//!   in some setups. Docker forwards the remaining types of its own names;
//!   shoal does not, because an upstream can only say NXDOMAIN for them,
//!   which contradicts the A answer and leaks overlay names to the outside;
//! - a message that is not a standard query with exactly one question:
//!   FORMERR or NOTIMP (nothing to forward).
//!
//! Everything else is forwarded, unless the asking task is on internal
//! networks only: then it gets SERVFAIL, as from Docker.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::lookup::{lookup, may_forward, Lookup};
use crate::model::NodeView;

/// The UDP payload size the resolver advertises in its own EDNS answers:
/// the DNS flag day 2020 value, safe from IP fragmentation.
pub const ADVERTISED_UDP_PAYLOAD: u16 = 1232;

/// What to do with one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Reply with this message, built from the view (records, NODATA, or
    /// an error code for a query that cannot be served).
    Reply(Message),
    /// Not an overlay name: ask the node's upstream resolvers.
    Forward,
    /// Not an overlay name, and the task is on internal networks only, so
    /// it may not reach outside resolvers: reply with this SERVFAIL.
    ForwardingDenied(Message),
}

/// Decides the answer to `query` from a task on `asker_networks`.
/// `rotation` is the round-robin counter of [`lookup`].
pub fn answer(
    view: &NodeView,
    asker_networks: &[String],
    query: &Message,
    rotation: u64,
) -> Answer {
    if query.op_code() != OpCode::Query {
        return Answer::Reply(error_reply(query, ResponseCode::NotImp));
    }
    let [question] = query.queries() else {
        return Answer::Reply(error_reply(query, ResponseCode::FormErr));
    };
    let class_in = question.query_class() == DNSClass::IN;
    let found = match question_name(question.name()) {
        Some(name) if class_in => lookup(view, asker_networks, &name, rotation),
        _ => Lookup::NotFound,
    };
    match found {
        Lookup::Found { addrs, ttl, .. } => {
            let mut reply = reply_to(query, ResponseCode::NoError);
            if matches!(question.query_type(), RecordType::A | RecordType::ANY) {
                reply.add_answers(a_records(question.name(), &addrs, ttl));
            }
            Answer::Reply(reply)
        }
        Lookup::NotFound if may_forward(view, asker_networks) => Answer::Forward,
        Lookup::NotFound => Answer::ForwardingDenied(reply_to(query, ResponseCode::ServFail)),
    }
}

/// The question's name as dotted text, or `None` if a label holds bytes no
/// service name can (a dot, a non-ASCII byte): such names are never ours.
fn question_name(name: &hickory_proto::rr::Name) -> Option<String> {
    let mut out = String::new();
    for label in name.iter() {
        if label.is_empty() || label.iter().any(|b| !b.is_ascii_graphic() || *b == b'.') {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(std::str::from_utf8(label).ok()?);
    }
    Some(out)
}

fn a_records(name: &hickory_proto::rr::Name, addrs: &[Ipv4Addr], ttl: u32) -> Vec<Record> {
    addrs
        .iter()
        .map(|addr| Record::from_rdata(name.clone(), ttl, RData::A(A(*addr))))
        .collect()
}

/// A reply skeleton for `query`: its ID, opcode, RD and CD bits and its
/// question echoed verbatim (clients that randomise the case of the name
/// check it), recursion available, and an OPT record if the query had one.
pub fn reply_to(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_checking_disabled(query.checking_disabled())
        .set_recursion_available(true)
        .set_response_code(code);
    reply.add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(ADVERTISED_UDP_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// An error reply; the question is echoed only when there is exactly one,
/// so that a malformed question section is not sent back.
fn error_reply(query: &Message, code: ResponseCode) -> Message {
    let mut reply = reply_to(query, code);
    if query.queries().len() != 1 {
        reply.queries_mut().clear();
    }
    reply
}

/// The largest reply the client accepts: 512 bytes over UDP unless its EDNS
/// OPT record says more; 65535 over TCP (the 2-byte length prefix).
pub fn max_reply_len(query: &Message, over_tcp: bool) -> usize {
    if over_tcp {
        usize::from(u16::MAX)
    } else {
        usize::from(query.max_payload())
    }
}

/// Encodes `reply` in at most `limit` bytes: if the whole message is larger,
/// it keeps as many answer records as fit (dropping the authority and
/// additional sections) and sets TC, so that a client that can retry over
/// TCP does, and one that cannot (musl before 1.2.4) still gets addresses.
/// `None` if the message cannot be encoded at all.
pub fn encode_within(reply: &Message, limit: usize) -> Option<Vec<u8>> {
    let whole = reply.to_vec().ok()?;
    if whole.len() <= limit {
        return Some(whole);
    }
    let mut trimmed = reply.clone();
    trimmed.set_truncated(true);
    trimmed.name_servers_mut().clear();
    trimmed.additionals_mut().clear();
    let answers = trimmed.take_answers();
    // Binary search the number of answers that fit: each try is one encode.
    let encode_with = |n: usize| {
        let mut m = trimmed.clone();
        m.insert_answers(answers[..n].to_vec());
        m.to_vec().ok()
    };
    let (mut fits, mut too_many) = (0, answers.len() + 1);
    let mut best = encode_with(0)?;
    if best.len() > limit {
        return None;
    }
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        match encode_with(mid) {
            Some(bytes) if bytes.len() <= limit => {
                fits = mid;
                best = bytes;
            }
            _ => too_many = mid,
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::super::lookup::tests::voting_view;
    use super::super::lookup::{BACKEND_TTL_SECS, VIP_TTL_SECS};
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(4242).set_recursion_desired(true);
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        q
    }

    fn nets(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn reply(a: Answer) -> Message {
        match a {
            Answer::Reply(m) => m,
            other => panic!("expected a local reply, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<(Ipv4Addr, u32)> {
        m.answers()
            .iter()
            .map(|r| match r.data() {
                RData::A(a) => (a.0, r.ttl()),
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_query_for_a_service_gets_its_vip_with_the_question_echoed() {
        let view = voting_view();
        let q = query("ReDis.", RecordType::A);
        let r = reply(answer(&view, &nets(&["net-front"]), &q, 0));
        assert_eq!(r.id(), 4242);
        assert_eq!(r.message_type(), MessageType::Response);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.recursion_desired() && r.recursion_available());
        assert_eq!(r.queries(), q.queries(), "question echoed verbatim");
        assert_eq!(addrs(&r), [(Ipv4Addr::new(10, 0, 1, 3), VIP_TTL_SECS)]);
        assert_eq!(r.answers()[0].name().to_ascii(), "ReDis.");
    }

    #[test]
    fn aaaa_and_other_types_for_a_known_name_are_empty_noerror() {
        let view = voting_view();
        for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let r = reply(answer(
                &view,
                &nets(&["net-front"]),
                &query("redis", qtype),
                0,
            ));
            assert_eq!(r.response_code(), ResponseCode::NoError, "{qtype}");
            assert!(r.answers().is_empty(), "{qtype}");
        }
    }

    #[test]
    fn dnsrr_and_tasks_answers_carry_every_backend_uncached() {
        let view = voting_view();
        let r = reply(answer(
            &view,
            &nets(&["net-back"]),
            &query("tasks.db", RecordType::A),
            1,
        ));
        assert_eq!(
            addrs(&r),
            [
                (Ipv4Addr::new(10, 0, 2, 41), BACKEND_TTL_SECS),
                (Ipv4Addr::new(10, 0, 2, 42), BACKEND_TTL_SECS),
                (Ipv4Addr::new(10, 0, 2, 40), BACKEND_TTL_SECS),
            ]
        );
    }

    #[test]
    fn unknown_and_unshared_names_are_forwarded() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        for name in ["example.com.", "db", "tasks.db", "secret"] {
            assert_eq!(
                answer(&view, &vote, &query(name, RecordType::A), 0),
                Answer::Forward,
                "{name}"
            );
        }
        // A known name in another class is not ours either.
        let mut chaos = query("redis", RecordType::TXT);
        chaos.queries_mut()[0].set_query_class(DNSClass::CH);
        assert_eq!(answer(&view, &vote, &chaos, 0), Answer::Forward);
    }

    #[test]
    fn internal_only_tasks_get_servfail_instead_of_forwarding() {
        let view = voting_view();
        let internal = nets(&["net-int"]);
        match answer(&view, &internal, &query("example.com", RecordType::A), 0) {
            Answer::ForwardingDenied(m) => {
                assert_eq!(m.response_code(), ResponseCode::ServFail);
                assert_eq!(m.id(), 4242);
            }
            other => panic!("{other:?}"),
        }
        // Their own network's names still resolve.
        let r = reply(answer(&view, &internal, &query("secret", RecordType::A), 0));
        assert_eq!(addrs(&r), [(Ipv4Addr::new(10, 0, 3, 2), VIP_TTL_SECS)]);
    }

    #[test]
    fn malformed_queries_get_formerr_or_notimp() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        let mut none = query("redis", RecordType::A);
        none.queries_mut().clear();
        assert_eq!(
            reply(answer(&view, &vote, &none, 0)).response_code(),
            ResponseCode::FormErr
        );
        let mut two = query("redis", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("vote").unwrap(),
            RecordType::A,
        ));
        let r = reply(answer(&view, &vote, &two, 0));
        assert_eq!(r.response_code(), ResponseCode::FormErr);
        assert!(r.queries().is_empty());
        let mut update = query("redis", RecordType::A);
        update.set_op_code(OpCode::Update);
        assert_eq!(
            reply(answer(&view, &vote, &update, 0)).response_code(),
            ResponseCode::NotImp
        );
    }

    #[test]
    fn edns_queries_get_an_opt_record_back() {
        let view = voting_view();
        let mut q = query("redis", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        q.set_edns(edns);
        let r = reply(answer(&view, &nets(&["net-front"]), &q, 0));
        assert_eq!(
            r.extensions().as_ref().map(|e| e.max_payload()),
            Some(ADVERTISED_UDP_PAYLOAD)
        );
        let plain = reply(answer(
            &view,
            &nets(&["net-front"]),
            &query("redis", RecordType::A),
            0,
        ));
        assert!(plain.extensions().is_none());
    }

    #[test]
    fn a_reply_too_large_for_udp_keeps_what_fits_and_sets_tc() {
        let q = query("big.example.", RecordType::A);
        let mut r = reply_to(&q, ResponseCode::NoError);
        let many: Vec<Ipv4Addr> = (0..100u8).map(|i| Ipv4Addr::new(10, 0, 9, i)).collect();
        r.add_answers(a_records(q.queries()[0].name(), &many, 0));

        let limit = max_reply_len(&q, false);
        assert_eq!(limit, 512);
        let bytes = encode_within(&r, limit).unwrap();
        assert!(bytes.len() <= 512);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(decoded.truncated());
        let kept = decoded.answers().len();
        assert!(kept > 10 && kept < 100, "kept {kept}");
        // One more record would not have fitted.
        let mut one_more = decoded.clone();
        one_more.add_answers(a_records(q.queries()[0].name(), &many[kept..=kept], 0));
        assert!(one_more.to_vec().unwrap().len() > 512);

        let whole = encode_within(&r, max_reply_len(&q, true)).unwrap();
        let decoded = Message::from_vec(&whole).unwrap();
        assert!(!decoded.truncated());
        assert_eq!(decoded.answers().len(), 100);
    }
}
