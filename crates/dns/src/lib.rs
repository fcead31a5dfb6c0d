//! Drover's DNS server for native service discovery (beyond Nomad, which
//! has none: nomad#12588). Every agent answers, over UDP, A, AAAA and SRV
//! queries for the healthy instances of a service (every check passing,
//! or no checks):
//!
//! - `<service>.service.<domain>`: the `default` namespace;
//! - `<service>.service.<namespace>.<domain>`;
//! - `<tag>.<service>.service[.<namespace>].<domain>`: instances with that tag;
//! - `<hex address>.addr.<domain>`: the SRV targets (as Consul names them).
//!
//! The domain is `nomad` unless configured. Answers carry a short TTL and
//! rotate between queries; a name with no healthy instance gets NXDOMAIN,
//! a name outside the domain REFUSED. Hostile input is bounded: queries
//! longer than [`MAX_QUERY_BYTES`] are dropped, a malformed one gets
//! FORMERR, answers never exceed the client's UDP size (512 bytes, or its
//! EDNS size up to [`MAX_UDP_ANSWER`]) and set TC when cut, and a token
//! bucket caps the queries answered per second.
//!
//! [`answer`] is pure (the registrations, the rotation and the query in,
//! bytes out); [`serve`] is the socket loop around it.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use types::{DEFAULT_NAMESPACE, ServiceRegistration};

/// Longest query accepted; longer datagrams are dropped unanswered.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Largest UDP answer, whatever EDNS size the client offers.
pub const MAX_UDP_ANSWER: usize = 1232;
/// Most instances one answer lists before the size limit applies.
pub const MAX_ANSWER_RECORDS: usize = 64;

/// The DNS server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub addr: SocketAddr,
    /// The zone served, without dots at either end (`nomad`).
    pub domain: String,
    /// TTL of every answer, in seconds.
    pub ttl: u32,
    /// Queries answered per second (a token bucket of as many).
    pub max_queries_per_second: u32,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8600)),
            domain: "nomad".to_string(),
            ttl: 5,
            max_queries_per_second: 5000,
        }
    }
}

/// Checks a configured domain: DNS labels of letters, digits and `-`.
pub fn validate_domain(domain: &str) -> Result<String, String> {
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 200
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(format!("dns domain {domain:?} is not a DNS name"))
    }
}

/// What a query name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Instances of a service, perhaps only those with a tag.
    Service {
        namespace: String,
        service: String,
        tag: Option<String>,
    },
    /// An SRV target: one address.
    Addr(IpAddr),
}

/// Parses a query name (any case, with or without the final dot) within
/// `domain`. `None`: not a name this server knows.
pub fn parse_name(name: &str, domain: &str) -> Option<Lookup> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let rest = name.strip_suffix(domain)?.strip_suffix('.')?;
    let labels: Vec<&str> = rest.split('.').collect();
    if let [hex, "addr"] = labels.as_slice() {
        return parse_hex_addr(hex).map(Lookup::Addr);
    }
    let (before, namespace) = match labels.as_slice() {
        [before @ .., "service"] => (before, DEFAULT_NAMESPACE),
        [before @ .., "service", namespace] => (before, *namespace),
        _ => return None,
    };
    let (tag, service) = match before {
        [service] => (None, *service),
        [tag, service] => (Some((*tag).to_string()), *service),
        _ => return None,
    };
    if service.is_empty() || namespace.is_empty() {
        return None;
    }
    Some(Lookup::Service {
        namespace: namespace.to_string(),
        service: service.to_string(),
        tag,
    })
}

/// An address as an SRV target label: 8 hex digits for IPv4, 32 for IPv6.
pub fn hex_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(|byte| format!("{byte:02x}")).collect(),
        IpAddr::V6(v6) => v6.octets().iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| hex.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    match bytes?.as_slice() {
        [a, b, c, d] if hex.len() == 8 => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        octets if hex.len() == 32 => {
            let array: [u8; 16] = octets.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(array)))
        }
        _ => None,
    }
}

/// The healthy instances a lookup names, rotated by `rotation`.
pub fn select(
    registrations: &[ServiceRegistration],
    namespace: &str,
    service: &str,
    tag: Option<&str>,
    rotation: usize,
) -> Vec<ServiceRegistration> {
    let mut chosen: Vec<ServiceRegistration> = registrations
        .iter()
        .filter(|registration| {
            registration.namespace == namespace
                && registration.service_name.eq_ignore_ascii_case(service)
                && registration.is_healthy()
                && registration.address.parse::<IpAddr>().is_ok()
                && tag.is_none_or(|tag| registration.tags.iter().any(|have| have.eq_ignore_ascii_case(tag)))
        })
        .cloned()
        .collect();
    chosen.sort_by(|left, right| left.id.cmp(&right.id));
    if !chosen.is_empty() {
        let by = rotation % chosen.len();
        chosen.rotate_left(by);
    }
    chosen.truncate(MAX_ANSWER_RECORDS);
    chosen
}

/// Where a server finds the instances of a service: (namespace, name) →
/// registrations (healthy or not; the server filters).
pub type Catalog = Arc<dyn Fn(&str, &str) -> Vec<ServiceRegistration> + Send + Sync>;

fn address_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name.clone(), ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(v6))),
    }
}

fn wants(query_type: RecordType, ip: IpAddr) -> bool {
    matches!(
        (query_type, ip),
        (RecordType::A | RecordType::ANY, IpAddr::V4(_)) | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_))
    )
}

/// Answers one datagram. `None`: drop it (too long, or not even a
/// header). Pure apart from what `catalog` reads.
pub fn answer(
    query: &[u8],
    domain: &str,
    ttl: u32,
    catalog: &dyn Fn(&str, &str) -> Vec<ServiceRegistration>,
    rotation: usize,
) -> Option<Vec<u8>> {
    if query.len() > MAX_QUERY_BYTES || query.len() < 12 {
        return None;
    }
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => {
            let id = u16::from_be_bytes([query[0], query[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if request.message_type() != MessageType::Query {
        return None;
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(false)
        .set_authoritative(true);
    let limit = usize::from(request.max_payload()).min(MAX_UDP_ANSWER);
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_ANSWER as u16);
        response.set_edns(edns);
    }
    if request.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return response.to_vec().ok();
    }
    let [question]: [Query; 1] = match request.queries().to_vec().try_into() {
        Ok(one) => one,
        Err(_) => {
            response.set_response_code(ResponseCode::FormErr);
            return response.to_vec().ok();
        }
    };
    response.add_query(question.clone());
    if question.query_class() != DNSClass::IN {
        response.set_response_code(ResponseCode::Refused);
        return response.to_vec().ok();
    }
    let name = question.name().clone();
    let query_type = question.query_type();
    let mut answers: Vec<Record> = Vec::new();
    let mut additionals: Vec<Record> = Vec::new();
    match parse_name(&name.to_ascii(), domain) {
        None => {
            let inside = name
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase()
                .ends_with(domain);
            response.set_response_code(if inside {
                ResponseCode::NXDomain
            } else {
                ResponseCode::Refused
            });
            return response.to_vec().ok();
        }
        Some(Lookup::Addr(ip)) => {
            if wants(query_type, ip) {
                answers.push(address_record(&name, ttl, ip));
            }
        }
        Some(Lookup::Service {
            namespace,
            service,
            tag,
        }) => {
            let instances = select(
                &catalog(&namespace, &service),
                &namespace,
                &service,
                tag.as_deref(),
                rotation,
            );
            if instances.is_empty() {
                response.set_response_code(ResponseCode::NXDomain);
                return response.to_vec().ok();
            }
            for instance in &instances {
                let Ok(ip) = instance.address.parse::<IpAddr>() else {
                    continue;
                };
                match query_type {
                    RecordType::SRV => {
                        let Ok(target) = Name::from_ascii(format!("{}.addr.{domain}.", hex_addr(ip))) else {
                            continue;
                        };
                        answers.push(Record::from_rdata(
                            name.clone(),
                            ttl,
                            RData::SRV(SRV::new(1, 1, instance.port, target.clone())),
                        ));
                        additionals.push(address_record(&target, ttl, ip));
                    }
                    other if wants(other, ip) => answers.push(address_record(&name, ttl, ip)),
                    _ => {}
                }
            }
        }
    }
    // Fit the client's size: drop records from the end, then say so.
    let mut truncated = false;
    loop {
        let mut candidate = response.clone();
        candidate.add_answers(answers.iter().cloned());
        candidate.add_additionals(additionals.iter().cloned());
        let bytes = candidate.to_vec().ok()?;
        if bytes.len() <= limit {
            if truncated {
                candidate.set_truncated(true);
                return candidate.to_vec().ok();
            }
            return Some(bytes);
        }
        truncated = true;
        if additionals.pop().is_none() && answers.pop().is_none() {
            response.set_truncated(true);
            return response.to_vec().ok();
        }
        // Keep additionals in step with the answers they serve.
        if additionals.len() > answers.len() {
            additionals.truncate(answers.len());
        }
        if query_type == RecordType::SRV && answers.len() > additionals.len() {
            answers.truncate(additionals.len());
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` stored.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    pub fn new(rate: u32) -> RateLimit {
        let rate = f64::from(rate.max(1));
        RateLimit {
            rate,
            tokens: rate,
            last: tokio::time::Instant::now(),
        }
    }

    /// Takes a token if one is left.
    pub fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Errors starting the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the DNS server to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Binds the UDP socket (so a taken port fails the agent's start).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::UdpSocket, DnsError> {
    tokio::net::UdpSocket::bind(addr)
        .await
        .map_err(|source| DnsError::Bind { addr, source })
}

/// Answers queries on `socket` until the task is dropped.
pub async fn serve(socket: tokio::net::UdpSocket, config: DnsConfig, catalog: Catalog) {
    let mut buffer = vec![0u8; MAX_QUERY_BYTES + 1];
    let mut limit = RateLimit::new(config.max_queries_per_second);
    let mut rotation: usize = 0;
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "dns receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !limit.allow() {
            continue;
        }
        rotation = rotation.wrapping_add(1);
        let Some(query) = buffer.get(..length) else { continue };
        if let Some(reply) = answer(query, &config.domain, config.ttl, &*catalog, rotation)
            && let Err(error) = socket.send_to(&reply, peer).await
        {
            tracing::debug!(%error, %peer, "dns send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::CheckResult;

    fn instance(id: &str, address: &str, port: u16, tags: &[&str], status: Option<&str>) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: "default".into(),
            address: address.into(),
            port,
            tags: tags.iter().map(|tag| (*tag).to_string()).collect(),
            checks: status
                .map(|status| {
                    vec![CheckResult {
                        name: "c".into(),
                        status: status.into(),
                        ..CheckResult::default()
                    }]
                })
                .unwrap_or_default(),
            ..ServiceRegistration::default()
        }
    }

    #[test]
    fn names_parse_into_lookups() {
        let service = |namespace: &str, service: &str, tag: Option<&str>| {
            Some(Lookup::Service {
                namespace: namespace.into(),
                service: service.into(),
                tag: tag.map(str::to_string),
            })
        };
        assert_eq!(
            parse_name("web.service.nomad.", "nomad"),
            service("default", "web", None)
        );
        assert_eq!(
            parse_name("WEB.Service.NOMAD", "nomad"),
            service("default", "web", None)
        );
        assert_eq!(
            parse_name("web.service.prod.nomad.", "nomad"),
            service("prod", "web", None)
        );
        assert_eq!(
            parse_name("v2.web.service.nomad.", "nomad"),
            service("default", "web", Some("v2"))
        );
        assert_eq!(
            parse_name("v2.web.service.prod.nomad", "nomad"),
            service("prod", "web", Some("v2"))
        );
        assert_eq!(
            parse_name("web.service.cluster.local.", "cluster.local"),
            service("default", "web", None)
        );
        assert_eq!(
            parse_name("7f000001.addr.nomad.", "nomad"),
            Some(Lookup::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        );
        assert_eq!(
            parse_name(
                &format!("{}.addr.nomad", hex_addr(IpAddr::V6(Ipv6Addr::LOCALHOST))),
                "nomad"
            ),
            Some(Lookup::Addr(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        );
        for unknown in [
            "web.nomad.",
            "a.b.web.service.nomad.",
            "web.service.example.com.",
            "xyz.addr.nomad.",
            "nomad.",
            ".service.nomad.",
            "web.service.nomadx.",
        ] {
            assert_eq!(parse_name(unknown, "nomad"), None, "{unknown}");
        }
    }

    #[test]
    fn only_healthy_instances_are_selected_and_they_rotate() {
        let all = vec![
            instance("a", "127.0.0.1", 1, &["v1"], Some("passing")),
            instance("b", "127.0.0.2", 2, &["v2"], None),
            instance("c", "127.0.0.3", 3, &["v1"], Some("critical")),
            instance("d", "::1", 4, &["v1"], Some("warning")),
        ];
        let ids = |chosen: Vec<ServiceRegistration>| chosen.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(select(&all, "default", "web", None, 0)), ["a", "b", "d"]);
        assert_eq!(ids(select(&all, "default", "web", None, 1)), ["b", "d", "a"]);
        assert_eq!(ids(select(&all, "default", "web", Some("V1"), 0)), ["a", "d"]);
        assert!(select(&all, "prod", "web", None, 0).is_empty());
    }

    fn query(name: &str, record_type: RecordType) -> Vec<u8> {
        let mut message = Message::new();
        message
            .set_id(7)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).expect("name"), record_type));
        message.to_vec().expect("encode")
    }

    fn ask(bytes: &[u8], all: &[ServiceRegistration]) -> Message {
        let catalog = |_: &str, _: &str| all.to_vec();
        let reply = answer(bytes, "nomad", 5, &catalog, 0).expect("an answer");
        Message::from_vec(&reply).expect("decodable answer")
    }

    #[test]
    fn answers_srv_a_and_aaaa_with_short_ttls() {
        let all = vec![
            instance("a", "127.0.0.1", 8001, &[], Some("passing")),
            instance("b", "::1", 8002, &[], None),
            instance("c", "127.0.0.3", 8003, &[], Some("critical")),
        ];
        let srv = ask(&query("web.service.nomad.", RecordType::SRV), &all);
        assert_eq!(srv.id(), 7);
        assert_eq!(srv.response_code(), ResponseCode::NoError);
        let mut ports: Vec<u16> = srv
            .answers()
            .iter()
            .filter_map(|record| match record.data() {
                RData::SRV(srv) => Some(srv.port()),
                _ => None,
            })
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, [8001, 8002]);
        assert!(srv.answers().iter().all(|record| record.ttl() == 5));
        assert_eq!(srv.additionals().len(), 2);
        let a = ask(&query("web.service.nomad.", RecordType::A), &all);
        assert_eq!(a.answers().len(), 1);
        assert!(matches!(a.answers()[0].data(), RData::A(A(ip)) if *ip == Ipv4Addr::LOCALHOST));
        let aaaa = ask(&query("web.service.nomad.", RecordType::AAAA), &all);
        assert_eq!(aaaa.answers().len(), 1);
        let target = ask(&query("7f000001.addr.nomad.", RecordType::A), &all);
        assert_eq!(target.answers().len(), 1);
        assert_eq!(
            ask(&query("nope.service.nomad.", RecordType::A), &all).response_code(),
            ResponseCode::NXDomain
        );
        assert_eq!(
            ask(&query("what.nomad.", RecordType::A), &all).response_code(),
            ResponseCode::NXDomain
        );
        assert_eq!(
            ask(&query("example.com.", RecordType::A), &all).response_code(),
            ResponseCode::Refused
        );
    }

    #[test]
    fn big_answers_are_cut_to_the_udp_size_and_flagged() {
        let all: Vec<ServiceRegistration> = (0..60)
            .map(|idx| instance(&format!("i{idx:02}"), &format!("10.0.0.{idx}"), 8000 + idx, &[], None))
            .collect();
        let bytes = query("web.service.nomad.", RecordType::SRV);
        let catalog = |_: &str, _: &str| all.clone();
        let reply = answer(&bytes, "nomad", 5, &catalog, 0).expect("an answer");
        assert!(reply.len() <= 512, "{} bytes", reply.len());
        let message = Message::from_vec(&reply).expect("decodable");
        assert!(message.truncated());
        assert!(!message.answers().is_empty());
        assert_eq!(message.answers().len(), message.additionals().len());
    }

    #[test]
    fn hostile_input_never_panics() {
        let all = vec![instance("a", "127.0.0.1", 1, &[], None)];
        let catalog = |_: &str, _: &str| all.clone();
        // Too short, too long: dropped.
        assert_eq!(answer(&[1, 2, 3], "nomad", 5, &catalog, 0), None);
        assert_eq!(answer(&vec![0u8; MAX_QUERY_BYTES + 1], "nomad", 5, &catalog, 0), None);
        // Garbage after a header: FORMERR with the same ID.
        let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        garbage.extend_from_slice(&[0xc0, 0x0c, 0xff, 0xff]);
        let reply = answer(&garbage, "nomad", 5, &catalog, 0).expect("formerr");
        assert_eq!(&reply[..2], &[0x12, 0x34]);
        assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
        // Every truncation and every single-byte change of a valid query.
        let valid = query("web.service.nomad.", RecordType::SRV);
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        for cut in 0..valid.len() {
            let _ = answer(&valid[..cut], "nomad", 5, &catalog, 0);
        }
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut mutated = valid.clone();
            let at = (rng as usize) % mutated.len();
            mutated[at] = (rng >> 32) as u8;
            let _ = answer(&mutated, "nomad", 5, &catalog, (rng >> 8) as usize);
        }
        // Two questions: FORMERR.
        let mut two = Message::new();
        two.set_id(1).set_message_type(MessageType::Query);
        two.add_query(Query::query(
            Name::from_ascii("a.service.nomad.").expect("name"),
            RecordType::A,
        ));
        two.add_query(Query::query(
            Name::from_ascii("b.service.nomad.").expect("name"),
            RecordType::A,
        ));
        let reply = answer(&two.to_vec().expect("encode"), "nomad", 5, &catalog, 0).expect("answer");
        assert_eq!(
            Message::from_vec(&reply).expect("decode").response_code(),
            ResponseCode::FormErr
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_refills_over_time() {
        let mut limit = RateLimit::new(3);
        assert!(limit.allow() && limit.allow() && limit.allow());
        assert!(!limit.allow());
        tokio::time::advance(Duration::from_millis(340)).await;
        assert!(limit.allow());
        assert!(!limit.allow());
    }

    #[test]
    fn domains_are_checked() {
        assert_eq!(validate_domain("Nomad."), Ok("nomad".to_string()));
        assert_eq!(validate_domain("cluster.local"), Ok("cluster.local".to_string()));
        assert!(validate_domain("").is_err());
        assert!(validate_domain("a..b").is_err());
        assert!(validate_domain("bad_name").is_err());
    }
}
