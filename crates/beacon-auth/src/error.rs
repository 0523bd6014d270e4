//! etcd's refusals of auth requests and of requests auth forbids: its words (the
//! client libraries match on them) and gRPC codes.

/// A refusal, worded as etcd 3.4's `rpctypes` words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// etcd's API layer has no gRPC error for it, so its text reaches the client as
    /// code Unknown.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// A login to a `jwt` provider without a private key; untranslated by etcd too.
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
}

impl AuthError {
    /// The auth package's own words, which etcd sends as they are (code Unknown)
    /// where its API layer does not translate them: the admin check of Defragment,
    /// Hash, HashKV and Snapshot.
    pub fn untranslated(self) -> &'static str {
        match self {
            AuthError::RootUserNotExist => "auth: root user does not exist",
            AuthError::RootRoleNotExist => "auth: root user does not have root role",
            AuthError::UserAlreadyExist => "auth: user already exists",
            AuthError::UserEmpty => "auth: user name is empty",
            AuthError::UserNotFound => "auth: user not found",
            AuthError::RoleAlreadyExist => "auth: role already exists",
            AuthError::RoleNotFound => "auth: role not found",
            AuthError::RoleEmpty => "auth: role name is empty",
            AuthError::AuthFailed => "auth: authentication failed, invalid user ID or password",
            AuthError::NoPasswordUser => {
                "auth: authentication failed, password was given for no password user"
            }
            AuthError::PermissionDenied => "auth: permission denied",
            AuthError::RoleNotGranted => "auth: role is not granted to the user",
            AuthError::PermissionNotGranted => "auth: permission is not granted to the role",
            AuthError::AuthNotEnabled => "auth: authentication is not enabled",
            AuthError::InvalidAuthToken => "auth: invalid auth token",
            AuthError::InvalidAuthMgmt => "auth: invalid auth management",
            AuthError::AuthOldRevision => "auth: revision in header is old",
            AuthError::VerifyOnly => "auth: token signing attempted with verify-only key",
        }
    }

    /// The gRPC status code etcd answers it with (the number every gRPC library shares).
    pub fn grpc_code(self) -> i32 {
        const INVALID_ARGUMENT: i32 = 3;
        const PERMISSION_DENIED: i32 = 7;
        const FAILED_PRECONDITION: i32 = 9;
        const UNKNOWN: i32 = 2;
        const UNAUTHENTICATED: i32 = 16;
        match self {
            AuthError::UserEmpty
            | AuthError::RoleEmpty
            | AuthError::AuthFailed
            | AuthError::InvalidAuthMgmt
            | AuthError::AuthOldRevision => INVALID_ARGUMENT,
            AuthError::PermissionDenied => PERMISSION_DENIED,
            AuthError::InvalidAuthToken => UNAUTHENTICATED,
            AuthError::NoPasswordUser | AuthError::VerifyOnly => UNKNOWN,
            AuthError::RootUserNotExist
            | AuthError::RootRoleNotExist
            | AuthError::UserAlreadyExist
            | AuthError::UserNotFound
            | AuthError::RoleAlreadyExist
            | AuthError::RoleNotFound
            | AuthError::RoleNotGranted
            | AuthError::PermissionNotGranted
            | AuthError::AuthNotEnabled => FAILED_PRECONDITION,
        }
    }
}
