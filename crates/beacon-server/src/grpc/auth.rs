//! `etcdserverpb.Auth`, and who a call runs as.
//!
//! Every Auth call goes through the log (as etcd's), where the keyspace applies it and
//! makes etcd's admin check (`beacon_mvcc`'s `auth.rs`). A login checks the password
//! here first, against the member's store after a ReadIndex, off the async threads
//! (bcrypt is slow on purpose), then proposes the token it chose so that every member
//! knows it. Passwords are hashed here too: the log never holds one.
//!
//! A call names its user with a token in its metadata (`token`, or `authorization` as
//! etcd's gateway sends it), or else with its connection's verified client certificate
//! (`--client-cert-auth`); an unknown or expired token is refused before anything
//! else, as etcd's `AuthInfoFromCtx` refuses it. With `--auth-token jwt,...` a token
//! is signed claims (`beacon_auth::jwt`) and a login proposes nothing.

use std::sync::Arc;

use beacon_auth::{password, tokens, AuthError, Caller};
use beacon_proto::beaconpb::{self, v3_request, v3_response};
use beacon_proto::etcdserverpb::{auth_server, *};
use tonic::{Request, Response, Status};

use super::propose;
use crate::limits::LOGIN_CHECKS_MAX;
use crate::state::AppState;

/// The Auth service.
pub struct Auth {
    state: Arc<AppState>,
}

impl Auth {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// etcd's answer to an auth refusal.
pub(crate) fn refused(e: AuthError) -> Status {
    Status::new(tonic::Code::from(e.grpc_code()), e.to_string())
}

/// The common name of a connection's verified client certificate (a request extension
/// the connection sets), which names the user of a call that carries no token.
#[derive(Debug, Clone)]
pub struct ClientCommonName(pub Arc<str>);

/// Who `request` runs as: the user its token names, else the one its client
/// certificate names, else nobody. A token this member does not know (never given,
/// expired, or its user changed) is refused.
pub(crate) fn caller<T>(state: &AppState, request: &Request<T>) -> Result<Option<Caller>, Status> {
    let cn = request.extensions().get::<ClientCommonName>();
    caller_of(state, request.metadata(), cn)
}

/// [`caller`] from a call's metadata and its connection's certificate name.
pub(crate) fn caller_of(
    state: &AppState,
    metadata: &tonic::metadata::MetadataMap,
    cn: Option<&ClientCommonName>,
) -> Result<Option<Caller>, Status> {
    let by_token = caller_of_metadata(state, metadata)?;
    if by_token.is_some() {
        return Ok(by_token);
    }
    let Some(cn) = cn else {
        return Ok(None);
    };
    Ok(Some(super::read_mvcc(state)?.auth().caller_named(&cn.0)))
}

/// The metadata keys a token comes under: grpc-go clients', then the gateway's.
pub(crate) const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// The caller a call's token names, if it carries one (`simple`: this member's table;
/// `jwt`: the signature and expiry).
pub(crate) fn caller_of_metadata(
    state: &AppState,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Option<Caller>, Status> {
    let token = TOKEN_KEYS
        .iter()
        .find_map(|key| metadata.get(*key))
        .map(|t| t.to_str().unwrap_or_default());
    let Some(token) = token else {
        return Ok(None);
    };
    if let Some(jwt) = &state.jwt {
        let now_s = state.now_ns().div_euclid(1_000_000_000);
        return jwt
            .caller(token, now_s)
            .map(Some)
            .ok_or_else(|| refused(AuthError::InvalidAuthToken));
    }
    let ttl_ns = i64::try_from(state.auth_token_ttl.as_nanos()).unwrap_or(i64::MAX);
    let mvcc = super::read_mvcc(state)?;
    mvcc.auth()
        .caller_of_token(token, state.now_ns(), ttl_ns)
        .map(Some)
        .ok_or_else(|| refused(AuthError::InvalidAuthToken))
}

/// etcd's `requireAuthInfo` (3.4.45, which guards calls 3.4.23 served to anyone):
/// while auth is on, a call must name a user, by a token or its certificate.
pub(crate) fn require_caller<T>(
    state: &AppState,
    request: &Request<T>,
) -> Result<Option<Caller>, Status> {
    let caller = caller(state, request)?;
    if caller.is_none() && super::read_mvcc(state)?.auth().is_enabled() {
        return Err(refused(AuthError::UserEmpty));
    }
    Ok(caller)
}

/// etcd's admin check at the API layer: the caller must have the root role while auth
/// is on. Member changes, and since etcd 3.4.45 Compact, Status, MoveLeader and the
/// alarm changes too.
pub(crate) fn check_admin<T>(state: &AppState, request: &Request<T>) -> Result<(), Status> {
    let caller = caller(state, request)?;
    super::read_mvcc(state)?
        .auth()
        .check_admin(caller.as_ref())
        .map_err(refused)
}

/// The same check of Defragment, Hash, HashKV and Snapshot, whose refusals etcd's
/// maintenance server sends untranslated (code Unknown, the auth package's words), a
/// bad token's too.
pub(crate) fn check_maintenance_admin<T>(
    state: &AppState,
    request: &Request<T>,
) -> Result<(), Status> {
    let untranslated = |e: AuthError| Status::unknown(e.untranslated());
    // `caller` fails only on a bad token.
    let caller = caller(state, request).map_err(|_| untranslated(AuthError::InvalidAuthToken))?;
    super::read_mvcc(state)?
        .auth()
        .check_admin(caller.as_ref())
        .map_err(untranslated)
}

/// Hashes `password` at the server's cost, off the async threads.
async fn hash(state: &AppState, password: String) -> Result<String, Status> {
    let cost = state.bcrypt_cost;
    tokio::task::spawn_blocking(move || password::hash(&password, cost))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::internal)
}

/// Runs one Auth call: its caller, its entry, and the answer's header.
macro_rules! through_log {
    ($self:ident, $request:ident, $variant:ident, $entry:expr) => {{
        let caller = caller(&$self.state, &$request)?;
        #[allow(clippy::redundant_closure_call)]
        let entry = $entry($request.into_inner());
        answer!($self, caller, $variant, entry)
    }};
}

/// Proposes `$entry` as `$caller` and answers with its `$variant` response.
macro_rules! answer {
    ($self:ident, $caller:ident, $variant:ident, $entry:expr) => {{
        match propose(&$self.state, $caller.as_ref(), $entry).await? {
            v3_response::Response::$variant(mut resp) => {
                resp.header = super::header_with(&$self.state, resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(super::unexpected()),
        }
    }};
}

#[tonic::async_trait]
impl auth_server::Auth for Auth {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        through_log!(self, request, AuthEnable, v3_request::Request::AuthEnable)
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        through_log!(self, request, AuthDisable, v3_request::Request::AuthDisable)
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let state = &self.state;
        let req = request.into_inner();
        // etcd reads the user after a ReadIndex, so a login right after a change of
        // password on another member sees it.
        // Unconfirmed (no leader in time), the login's entry goes through the log, whose
        // apply checks the user again.
        let _confirmed = state.consensus.read_index(state.request_timeout).await;
        crate::consensus::caught_up(state.consensus.as_ref(), state.request_timeout)
            .await
            .map_err(|f| super::failure(&f))?;
        // A jwt names the auth revision the password was checked at; one that changed
        // while bcrypt ran would make the token stale at once, so etcd checks again.
        let mut checks = 0;
        loop {
            let (hash, revision) = super::read_mvcc(state)?
                .auth()
                .password_of(&req.name)
                .map_err(refused)?;
            let password = req.password.clone();
            let matches = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            if !matches {
                tracing::info!(user = %req.name, "invalid password");
                return Err(refused(AuthError::AuthFailed));
            }
            let Some(jwt) = &state.jwt else {
                // A simple token's entry goes through the log, whose apply checks the
                // user again.
                break;
            };
            checks += 1;
            let current = super::read_mvcc(state)?.auth().revision();
            if current != revision && checks < LOGIN_CHECKS_MAX {
                continue;
            }
            // Signed claims: nothing for the other members to learn, so no entry.
            let now_s = state.now_ns().div_euclid(1_000_000_000);
            let token = jwt.sign(&req.name, revision, now_s).map_err(refused)?;
            return Ok(Response::new(AuthenticateResponse {
                header: Some(super::header(state)),
                token,
            }));
        }
        let token = tokens::new_token(state.consensus.status().applied_index);
        let entry = v3_request::Request::Authenticate(beaconpb::Authenticate {
            name: req.name,
            token,
            now_ns: state.now_ns(),
        });
        match propose(state, None, entry).await? {
            v3_response::Response::Authenticate(mut resp) => {
                resp.header = super::header_with(state, resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(super::unexpected()),
        }
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        let req = request.into_inner();
        let no_password = req.options.is_some_and(|o| o.no_password);
        let hashed_password = if no_password {
            String::new()
        } else {
            hash(&self.state, req.password).await?
        };
        let entry = v3_request::Request::UserAdd(beaconpb::UserAdd {
            name: req.name,
            hashed_password,
            options: req.options,
        });
        answer!(self, caller, UserAdd, entry)
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        through_log!(self, request, UserGet, v3_request::Request::UserGet)
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        through_log!(self, request, UserList, v3_request::Request::UserList)
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        through_log!(self, request, UserDelete, v3_request::Request::UserDelete)
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        let req = request.into_inner();
        let hashed_password = hash(&self.state, req.password).await?;
        let entry = v3_request::Request::UserChangePassword(beaconpb::UserChangePassword {
            name: req.name,
            hashed_password,
        });
        answer!(self, caller, UserChangePassword, entry)
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        through_log!(
            self,
            request,
            UserGrantRole,
            v3_request::Request::UserGrantRole
        )
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        through_log!(
            self,
            request,
            UserRevokeRole,
            v3_request::Request::UserRevokeRole
        )
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        through_log!(self, request, RoleAdd, v3_request::Request::RoleAdd)
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        through_log!(self, request, RoleGet, v3_request::Request::RoleGet)
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        through_log!(self, request, RoleList, v3_request::Request::RoleList)
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        through_log!(self, request, RoleDelete, v3_request::Request::RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        through_log!(
            self,
            request,
            RoleGrantPermission,
            v3_request::Request::RoleGrantPermission
        )
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        through_log!(
            self,
            request,
            RoleRevokePermission,
            v3_request::Request::RoleRevokePermission
        )
    }
}
