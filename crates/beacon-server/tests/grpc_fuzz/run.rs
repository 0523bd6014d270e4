//! One run: the users set up and logged in, then each call generated, sent, classified
//! and, when accepted, judged by the model; what accepted calls wrote is kept for the
//! check after the run.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use beacon_proto::authpb::Permission;
use beacon_proto::etcdserverpb::auth_client::AuthClient;
use beacon_proto::etcdserverpb::lease_client::LeaseClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::*;
use beacon_proto::v3electionpb::{CampaignRequest, CampaignResponse, ProclaimRequest};
use beacon_proto::v3lockpb::LockResponse;
use beacon_testkit::SeededRng;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::judge::{decodes, needs_of, own_auth_read};
use crate::model::{self, Access, Who, ROLES, USERS};
use crate::requests::{self, Known, Method};
use crate::{mutate, raw, CALL_DEADLINE, SHORT_DEADLINE};

const PASSWORD: &str = "pw";

pub struct Run {
    channel: Channel,
    rng: SeededRng,
    root_token: String,
    /// Each of [`USERS`]' tokens.
    tokens: Vec<String>,
    known: Known,
    /// Every key and value an accepted request may have written.
    written: HashSet<(Vec<u8>, Vec<u8>)>,
    pub figures: Figures,
    pub violations: Vec<String>,
}

#[derive(Default)]
pub struct Figures {
    /// Messages that decode as their method's request.
    decodable: usize,
    accepted: usize,
    /// Accepted from a caller other than root and needing some permission: what the
    /// model judged.
    judged: usize,
    refused_by_auth: usize,
    refused_as_undecodable: usize,
    refused_otherwise: usize,
    /// Watch requests answered by nothing (a cancel, say) before their deadline or the
    /// stream's end.
    unanswered_watches: usize,
    /// Lock and Campaign calls whose deadline expired.
    expired_waits: usize,
    /// Each refusal's code, and a sample message.
    codes: BTreeMap<i32, (usize, String)>,
}

impl Figures {
    pub fn print(&self, calls: usize, elapsed: Duration) {
        println!(
            "grpc fuzz: {calls} calls in {elapsed:.1?}: {} decodable, {} accepted ({} of them \
             from users and judged by the model), {} refused by auth, {} refused as \
             undecodable, {} refused otherwise; {} watches unanswered, {} waits expired",
            self.decodable,
            self.accepted,
            self.judged,
            self.refused_by_auth,
            self.refused_as_undecodable,
            self.refused_otherwise,
            self.unanswered_watches,
            self.expired_waits,
        );
        for (code, (n, sample)) in &self.codes {
            println!("  {:?}: {n}, e.g. {sample:?}", Code::from(*code));
        }
    }
}

/// A refusal of auth's: a permission, a user, a token or a password.
fn by_auth(s: &Status) -> bool {
    let m = s.message();
    matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated)
        || [
            "permission denied",
            "user name is empty",
            "invalid auth token",
            "authentication failed",
            "auth revision",
        ]
        .iter()
        .any(|w| m.contains(w))
}

impl Run {
    /// Root and [`USERS`] with [`ROLES`], auth on, everyone logged in; three leases,
    /// and a key attached to each.
    pub async fn set_up(channel: Channel, seed: u64) -> Run {
        let mut auth = AuthClient::new(channel.clone());
        let names = std::iter::once("root").chain(USERS.iter().map(|u| u.0));
        for name in names {
            let user = AuthUserAddRequest {
                name: name.into(),
                password: PASSWORD.into(),
                options: None,
            };
            auth.user_add(user).await.expect("user added");
        }
        let grant = |user: &str, role: &str| AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        };
        auth.user_grant_role(grant("root", "root"))
            .await
            .expect("root");
        for (role, perms) in ROLES {
            let add = AuthRoleAddRequest {
                name: role.to_string(),
            };
            auth.role_add(add).await.expect("role added");
            for (kind, key, range_end) in perms.iter() {
                let perm = Permission {
                    perm_type: match kind {
                        model::Kind::Read => 0,
                        model::Kind::Write => 1,
                        model::Kind::ReadWrite => 2,
                    },
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                };
                let req = AuthRoleGrantPermissionRequest {
                    name: role.to_string(),
                    perm: Some(perm),
                };
                auth.role_grant_permission(req).await.expect("permission");
            }
        }
        for (user, roles) in USERS {
            for role in roles.iter() {
                auth.user_grant_role(grant(user, role))
                    .await
                    .expect("granted");
            }
        }
        auth.auth_enable(AuthEnableRequest {})
            .await
            .expect("auth on");
        let login = |name: &str| AuthenticateRequest {
            name: name.into(),
            password: PASSWORD.into(),
        };
        let root_token = auth.authenticate(login("root")).await.expect("root in");
        let root_token = root_token.into_inner().token;
        let mut tokens = Vec::new();
        for (user, _) in USERS {
            tokens.push(
                auth.authenticate(login(user))
                    .await
                    .expect("in")
                    .into_inner()
                    .token,
            );
        }
        let status = MaintenanceClient::new(channel.clone())
            .status(beacon_testkit::with_token(&root_token, StatusRequest {}))
            .await
            .expect("status");
        let mut run = Run {
            channel,
            rng: SeededRng::new(seed),
            root_token,
            tokens,
            known: Known {
                leases: Vec::new(),
                member_id: status.into_inner().leader,
                focus: Vec::new(),
            },
            written: HashSet::new(),
            figures: Figures::default(),
            violations: Vec::new(),
        };
        // Keys on leases: a lease's keys decide who may revoke it or attach another.
        for (key, id) in [
            (b"b".as_slice(), 0x5001),
            (b"zz", 0x5002),
            (b"foo1", 0x5003),
        ] {
            let mut lease = LeaseClient::new(run.channel.clone());
            let grant = LeaseGrantRequest { ttl: 600, id };
            let granted = lease
                .lease_grant(beacon_testkit::with_token(&run.root_token, grant))
                .await;
            granted.expect("lease granted");
            let put = PutRequest {
                key: key.to_vec(),
                value: b"leased".to_vec(),
                lease: id,
                ..PutRequest::default()
            };
            let body = put.encode_to_vec();
            run.send_as_root(Method::Put, body)
                .await
                .expect("leased put");
            run.written.insert((key.to_vec(), b"leased".to_vec()));
            run.known.leases.push(id);
        }
        run
    }

    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Root => Some(&self.root_token),
            Who::User(i) => Some(&self.tokens[i]),
            Who::BadToken => Some("bogus.1"),
            Who::Anonymous => None,
        }
    }

    /// A caller: a user mostly; root never changes auth or members.
    fn caller(&mut self, method: Method) -> Who {
        loop {
            let who = match self.rng.below(USERS.len() as u64 * 2 + 3) as usize {
                i if i < USERS.len() * 2 => Who::User(i / 2),
                i if i == USERS.len() * 2 => Who::Root,
                i if i == USERS.len() * 2 + 1 => Who::BadToken,
                _ => Who::Anonymous,
            };
            if who != Who::Root || !method.changes_auth_or_members() {
                return who;
            }
        }
    }

    async fn send_as_root(&self, method: Method, body: Vec<u8>) -> Result<Vec<u8>, Status> {
        let call = raw::Call {
            path: method.path(),
            body,
            token: Some(&self.root_token),
            deadline: CALL_DEADLINE,
        };
        raw::unary(&self.channel, call)
            .await
            .unwrap_or_else(|| Err(Status::deadline_exceeded("root's call")))
    }

    /// The keys attached to `lease`, as root reads them.
    async fn lease_keys(&self, lease: i64) -> Vec<Vec<u8>> {
        let ask = LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        };
        let answer = self
            .send_as_root(Method::LeaseTimeToLive, ask.encode_to_vec())
            .await;
        answer
            .ok()
            .and_then(|b| LeaseTimeToLiveResponse::decode(b.as_slice()).ok())
            .map_or(Vec::new(), |r| r.keys)
    }

    /// Call `i`: generated, sent, classified, judged.
    pub async fn one(&mut self, i: usize) {
        let method = requests::method(&mut self.rng);
        let who = self.caller(method);
        self.known.focus = model::focus(who);
        let base = requests::well_formed(method, &mut self.rng, &self.known);
        let body = match self.rng.below(10) {
            0..=3 => base,
            4 => {
                let other = requests::method(&mut self.rng);
                requests::well_formed(other, &mut self.rng, &self.known)
            }
            _ => mutate::mutate(&mut self.rng, &base),
        };
        let decodable = decodes(method, &body);
        self.figures.decodable += usize::from(decodable);
        // What the leases named by a Put (alone or in a transaction) or a revocation
        // hold before the call.
        let leases: Vec<i64> = match method {
            Method::Put => {
                PutRequest::decode(body.as_slice()).map_or(Vec::new(), |p| vec![p.lease])
            }
            Method::Txn => TxnRequest::decode(body.as_slice()).map_or(Vec::new(), |t| {
                model::txn_puts(&t).iter().map(|p| p.lease).collect()
            }),
            Method::LeaseRevoke => {
                LeaseRevokeRequest::decode(body.as_slice()).map_or(Vec::new(), |r| vec![r.id])
            }
            _ => Vec::new(),
        };
        let mut lease_keys = Vec::new();
        if matches!(who, Who::User(_)) {
            for lease in leases.into_iter().filter(|l| *l != 0) {
                lease_keys.extend(self.lease_keys(lease).await);
            }
        }
        let deadline = if method.may_wait() || method == Method::Watch {
            SHORT_DEADLINE
        } else {
            CALL_DEADLINE
        };
        let call = raw::Call {
            path: method.path(),
            body: body.clone(),
            token: self.token(who),
            deadline,
        };
        let context = || {
            format!(
                "call {i}: {method:?} as {} of {:02x?}",
                who.name(),
                &body[..body.len().min(64)]
            )
        };
        let answer = if method == Method::Watch {
            match raw::watch_once(&self.channel, call).await {
                Some(Ok(None)) => {
                    self.figures.unanswered_watches += 1;
                    return;
                }
                Some(Ok(Some(bytes))) => Some(Ok(bytes)),
                Some(Err(s)) => Some(Err(s)),
                None => None,
            }
        } else {
            raw::unary(&self.channel, call).await
        };
        let answer = match answer {
            None => {
                self.violations
                    .push(format!("{}: no answer in time", context()));
                return;
            }
            Some(Err(s)) => {
                // A refusal is the server's answer; a failure inside it is not.
                if s.code() == Code::Internal && !s.message().contains("decode") {
                    let v = format!("{}: failed inside: {s:?}", context());
                    self.violations.push(v);
                }
                self.refused(method, &s);
                return;
            }
            Some(Ok(answer)) => answer,
        };
        self.figures.accepted += 1;
        if !decodable {
            let v = format!("{}: accepted, but does not decode", context());
            self.violations.push(v);
            return;
        }
        self.record_writes(method, &body, &answer);
        if method == Method::Alarm {
            self.clear_alarms().await;
        }
        if who == Who::Root {
            return;
        }
        let mut needs = needs_of(method, &body, &answer);
        needs.extend(
            lease_keys
                .into_iter()
                .map(|k| (Access::Write, k, Vec::new())),
        );
        self.figures.judged += usize::from(!needs.is_empty() || method.admin_only());
        let unmet = model::unmet(who, &needs);
        if !unmet.is_empty() {
            let unmet: Vec<String> = unmet
                .iter()
                .map(|(a, k, e)| format!("{a:?} {:?}..{:?}", bstr(k), bstr(e)))
                .collect();
            let v = format!("{}: accepted, but needs {}", context(), unmet.join(", "));
            self.violations.push(v);
        }
        if method.admin_only() || !own_auth_read(method, who, &body) {
            let v = format!("{}: accepted from a caller other than root", context());
            self.violations.push(v);
        }
    }

    fn refused(&mut self, method: Method, s: &Status) {
        if method.may_wait() && matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled) {
            self.figures.expired_waits += 1;
            return;
        }
        let undecodable = s.code() == Code::Internal && s.message().contains("decode");
        if undecodable {
            self.figures.refused_as_undecodable += 1;
        } else if by_auth(s) {
            self.figures.refused_by_auth += 1;
        } else {
            self.figures.refused_otherwise += 1;
        }
        let entry = self.figures.codes.entry(s.code() as i32).or_default();
        entry.0 += 1;
        if entry.1.is_empty() {
            entry.1 = s.message().chars().take(100).collect();
        }
    }

    /// Keeps what an accepted call may have written (either branch of a transaction).
    fn record_writes(&mut self, method: Method, body: &[u8], answer: &[u8]) {
        let mut writes = Vec::new();
        match method {
            Method::Put => {
                if let Ok(p) = PutRequest::decode(body) {
                    writes.push((p.key, p.value));
                }
            }
            Method::Txn => {
                if let Ok(t) = TxnRequest::decode(body) {
                    writes.extend(model::txn_puts(&t).into_iter().map(|p| (p.key, p.value)));
                }
            }
            Method::Campaign => {
                let (req, resp) = (
                    CampaignRequest::decode(body),
                    CampaignResponse::decode(answer),
                );
                if let (Ok(req), Ok(resp)) = (req, resp) {
                    writes.extend(resp.leader.map(|l| (l.key, req.value)));
                }
            }
            Method::Proclaim => {
                if let Ok(p) = ProclaimRequest::decode(body) {
                    writes.extend(p.leader.map(|l| (l.key, p.value)));
                }
            }
            Method::Lock => {
                if let Ok(l) = LockResponse::decode(answer) {
                    writes.push((l.key, Vec::new()));
                }
            }
            _ => {}
        }
        self.written.extend(writes);
    }

    /// Root takes back any alarm an accepted Alarm call raised, so that writes go on.
    async fn clear_alarms(&mut self) {
        let get = AlarmRequest::default().encode_to_vec();
        let Ok(listed) = self.send_as_root(Method::Alarm, get).await else {
            return;
        };
        let alarms = AlarmResponse::decode(listed.as_slice()).map_or(Vec::new(), |r| r.alarms);
        for alarm in alarms {
            let off = AlarmRequest {
                action: 2,
                member_id: alarm.member_id,
                alarm: alarm.alarm,
            };
            let _ = self.send_as_root(Method::Alarm, off.encode_to_vec()).await;
        }
    }

    /// After the run: the server still answers root, and every key holds a value some
    /// accepted request wrote.
    pub async fn check_after(&mut self, seed: u64) {
        let status = self.send_as_root(Method::Status, Vec::new()).await;
        assert!(
            status.is_ok(),
            "seed {seed}: Status after the run: {status:?}"
        );
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..RangeRequest::default()
        };
        let answer = self.send_as_root(Method::Range, all.encode_to_vec()).await;
        let answer = answer.unwrap_or_else(|s| panic!("seed {seed}: reading every key: {s:?}"));
        let kvs = RangeResponse::decode(answer.as_slice())
            .expect("a range answer")
            .kvs;
        for kv in kvs {
            if !self.written.contains(&(kv.key.clone(), kv.value.clone())) {
                self.violations.push(format!(
                    "after the run: {:?} holds {:?}, which no accepted request wrote",
                    bstr(&kv.key),
                    bstr(&kv.value)
                ));
            }
        }
    }
}

fn bstr(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
